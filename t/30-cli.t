# The bin/sharelite command, run for real as a separate process
# ($^X -Iblib/lib -Iblib/arch bin/sharelite ..., from the repository root,
# stdin from a temp file): help and usage errors (exit 0 / 2), the KEY forms
# (decimal, 0x-hex, 4-character string; more in t/34), missing shares (exit 1,
# one-line message, nothing created), put/get round trips of binary data
# (all byte values, NULs, 300 KB, empty), put --create/--mode/--size and
# their effects seen by stat --json and in the listing of SysV objects
# (/proc/sysvipc or ipcs), shrinking (segments,
# shm_state), list and stat fields for shares made by ours and by 0.17
# (segments, length, version, mode, owner, readers/writers while a child holds
# LOCK_SH twice or LOCK_EX), a 0.17-made share read with get and removed with
# rm, rm removing every segment and the semaphore set, a chain with a cycle and
# a dangling link listed without hanging or crashing, and (as root) a 0600
# share seen by another user: listed with '?' / null, get refused. Then
# --version, usage errors in one line plus a pointer to --help, "too large"
# keys, --help printing the POD's synopsis; gc against real orphans (a share
# made by a child killed with SIGKILL, its head and semaphore set removed with
# ipcrm) next to a sound share whose chained segments must stay: dry run,
# --head, --id, --json, --remove; list and stat through ipcs (as root, with
# /proc/sysvipc hidden in a mount namespace) giving what /proc gives; the
# bash and zsh completion scripts run in those shells; the command run from
# the built tree (perl -Mblib blib/script/sharelite, bin/sharelite finding
# blib by itself) and its manual with perldoc before and after install.
# The 0.17 parts need the reference (t/tools/fetch-ref) and skip without it.

use strict;
use Config ();
use warnings;
use Test::More;
use lib 't/lib';
use SLTest qw(:DEFAULT ipc_objects created_since);
use File::Temp ();
use Fcntl qw(LOCK_SH LOCK_EX);
use IPC::SysV qw(IPC_RMID);
use JSON::PP ();
use IPC::ShareLite::Inspect qw(KEY_BITS signed_key unsigned_key);
use POSIX ();
use Time::HiRes qw(sleep time);

chdir root_dir() or die "chdir: $!";

my $TMP = File::Temp::tempdir( 'slcli.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
my $N   = 0;
my $ME  = getpwuid( $< ) // $<;

# Run bin/sharelite; returns (exit code, stdout, stderr). $opt{uid}: run as
# that user (root only).
sub cli {
  my ( $args, $stdin, %opt ) = @_;
  return run( [ $^X, '-Iblib/lib', '-Iblib/arch', 'bin/sharelite', @$args ], $stdin, %opt );
}

# Run a command the same way. $opt{cwd}: in that directory; $opt{path}: with
# that PATH.
sub run {
  my ( $cmd, $stdin, %opt ) = @_;
  my $n   = $N++;
  my $in  = "$TMP/in.$n";
  my $err = "$TMP/err.$n";
  open my $fh, '>:raw', $in or die "$in: $!";
  print {$fh} defined $stdin ? $stdin : '';
  close $fh or die "$in: $!";
  my $pid = open( my $out, '-|' ) // die "fork: $!";
  if ( !$pid ) {
    open STDIN,  '<', $in  or POSIX::_exit( 97 );
    open STDERR, '>', $err or POSIX::_exit( 97 );
    if ( defined $opt{uid} ) {
      POSIX::setgid( $opt{uid} ) or POSIX::_exit( 96 );
      POSIX::setuid( $opt{uid} ) or POSIX::_exit( 96 );
    }
    delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
    $ENV{PATH} = $opt{path} if defined $opt{path};
    if ( defined $opt{cwd} ) { chdir $opt{cwd} or POSIX::_exit( 95 ) }
    exec( @$cmd ) or POSIX::_exit( 98 );
  }
  binmode $out;
  my $stdout = do { local $/; <$out> };
  close $out;
  my $rc = $? & 127 ? 128 + ( $? & 127 ) : $? >> 8;
  my $stderr = do { local ( @ARGV, $/ ) = ( $err ); <> };
  return ( $rc, defined $stdout ? $stdout : '', defined $stderr ? $stderr : '' );
}

sub jcli {
  my ( $rc, $out, $err ) = cli( @_ );
  my $data = eval { JSON::PP->new->decode( $out ) };
  diag( "no JSON (exit $rc): $err$out" ) unless $data;
  return ( $rc, $data );
}

sub stat_json { my ( $rc, $d ) = jcli( [ 'stat', shift, '--json' ] ); return $rc == 0 ? $d : undef }

sub list_json {
  my ( $rc, $list ) = jcli( [ 'list', '--json' ] );
  is( $rc, 0, 'list --json exits 0' );
  return { map { $_->{key_dec} => $_ } @{ $list || [] } };
}

# A key in hex as the command shows it: its key_t's bits (32 on Linux, macOS
# and Solaris, 64 on the BSDs).
sub khex { sprintf '0x%08x', unsigned_key( $_[0] ) }

# Numbers one past the largest a key_t holds, in hex and decimal.
my ( $TOO_LARGE_HEX, $TOO_LARGE_DEC ) =
  KEY_BITS == 32 ? ( '0x100000000', '4294967296' ) : ( '0x10000000000000000', '18446744073709551616' );

sub shm_by_id { return { map { $_->{id} => $_ } sysv_segments() } }
sub sem_by_key { return { map { $_->{key} => $_ } sysv_semaphores() } }

# The shmids of the chain from segment $head (SLTest::header_of: cycle-safe).
sub chain_from {
  my $id = shift;
  my ( @ids, %seen );
  while ( defined $id && $id >= 0 && !$seen{$id}++ ) {
    my ( $next ) = SLTest::header_of( $id ) or last;
    push @ids, $id;
    $id = $next;
  }
  return @ids;
}

sub share_gone {
  my ( $key, @ids ) = @_;
  my $shm = shm_by_id();
  return !defined( shmget( $key, 0, 0 ) ) && !defined( semget( $key, 0, 0 ) ) && !grep { $shm->{$_} } @ids;
}

# Deterministic binary value: every byte value, NULs, different per block.
sub mk {
  my ( $len, $seed ) = @_;
  my $s = '';
  my $i = 0;
  $s .= pack( 'N', $i++ ) . "\0$seed\0" . join( '', map { chr } 0 .. 255 ) while length $s < $len;
  return substr( $s, 0, $len );
}

sub nsegs { return SLTest::nsegs( @_ ) }

# A child holding locks: $n handles of $impl on $key, each locked $type.
# Returns a function that releases them and reaps the child.
sub hold_lock {
  my ( $impl, $key, $type, $n, $size ) = @_;
  my $dir = File::Temp::tempdir( 'hold.XXXXXX', DIR => $TMP );
  my $code = <<'EOC';
my ( $key, $type, $n, $size, $dir ) = @ARGV;
my @h = map { IPC::ShareLite->new( -key => $key, -create => 0, -destroy => 0,
  ( $size ? ( -size => $size ) : () ) ) } 1 .. $n;
for ( @h ) { $_->lock( $type ) or die "lock: $!" }
open my $fh, '>', "$dir/ready" or die; close $fh;
my $end = time + 30;
select undef, undef, undef, 0.01 until -e "$dir/release" || time > $end;
$_->unlock for @h;
exit 0;
EOC
  my $pid = spawn_impl( $impl, $code, $key, $type, $n, $size || 0, $dir );
  my $end = time + 20;
  sleep 0.01 until -e "$dir/ready" || time > $end || waitpid( $pid, POSIX::WNOHANG() ) == $pid;
  ok( -e "$dir/ready", "$impl child holds " . ( $type == LOCK_SH ? 'LOCK_SH' : 'LOCK_EX' ) . " x$n on " . khex( $key ) );
  return sub {
    open my $fh, '>', "$dir/release" or die;
    close $fh;
    is( wait_child( $pid ), 0, "$impl lock holder exits cleanly" );
  };
}

# ------------------------------------------------------------ help and usage

for my $args ( [ '--help' ], [ '-h' ], [ 'help' ], [ 'get', '--help' ], [ 'frob', '-h' ] ) {
  my ( $rc, $out, $err ) = cli( $args );
  is( $rc, 0, "@$args: exit 0" );
  like( $out, qr/\AUsage: sharelite COMMAND/, "@$args: usage on stdout" );
  is( $err, '', "@$args: nothing on stderr" );
}

{
  my $K      = new_key( 1 );
  my $before = ipc_objects();
  for my $args ( [], [ 'frob' ], [ '-x' ], [ 'list', '--bogus' ], [ 'list', 'extra' ], [ 'get' ],
    [ 'get', $K, 'extra' ], [ 'get', $K, '--json' ], [ 'put', $K, '--mode' ], [ 'put', $K, '--mode', '999' ],
    [ 'put', $K, '--size', '-1' ], [ 'put', $K, '--size=4x' ], [ 'rm', $K, '--create' ], [ 'stat', 'abcde' ],
    [ 'stat', '0' ], [ 'stat', $TOO_LARGE_HEX ], [ 'stat', $TOO_LARGE_DEC ], [ 'list', '--json=1' ] )
  {
    my ( $rc, $out, $err ) = cli( $args, 'x' );
    is( $rc, 2, "'@$args': exit 2" );
    like( $err, qr/\Asharelite: [^\n]+\nUsage: sharelite/, "'@$args': message and usage on stderr" );
    is( $out, '', "'@$args': nothing on stdout" );
  }
  is_deeply( [ created_since( $before, $K, -1 ) ], [], 'usage errors create nothing' );
}

# ------------------------------------------------------------ keys and missing shares

{
  my $K = new_key( 1 );
  my $H = khex( $K );
  for my $form ( $K, $H, '0x' . uc( substr( $H, 2 ) ), "00$K" ) {
    my ( $rc, $out, $err ) = cli( [ 'stat', $form ] );
    is( $rc, 1, "stat $form (missing): exit 1" );
    is( $err, "sharelite: stat $H ($K): no such share\n", "stat $form: key $H, one-line message" );
  }
  my ( $rc, $out, $err ) = cli( [ 'stat', 'abcd' ] );
  my $sk = unpack( 'i', pack( 'A4', 'abcd' ) );
  # Native-endian, like the module: the bytes of 'abcd' read as this host's int32.
  my $native = pack( 'L', 1 ) eq "\1\0\0\0" ? '0x64636261' : '0x61626364';
  like( $err, qr/^sharelite: stat $native \($sk\): /, 'string key converted like the module' );
  ( $rc, $out, $err ) = cli( [ 'stat', 'ab' ] );
  $sk = unpack( 'i', pack( 'A4', 'ab' ) );
  like( $err, qr/^sharelite: stat ${\ khex($sk)} \($sk\): /, 'short string key space-padded' );
  ( $rc, $out, $err ) = cli( [ 'stat', '4294967294' ] );
  like( $err, qr/^sharelite: stat 0xfffffffe \(4294967294\): /, 'decimal key above 2^31: the key_t of the same bits' );
  ( $rc, $out, $err ) = cli( [ 'stat', '0xfffffffe' ] );
  like( $err, qr/^sharelite: stat 0xfffffffe \(4294967294\): /, 'hex key above 2^31: the same' );

  for my $args ( [ 'get', $K ], [ 'rm', $K ], [ 'stat', $K ], [ 'stat', $K, '--json' ], [ 'put', $K ],
    [ 'put', $K, '--mode', '0600', '--size', '4096' ] )
  {
    my $before = ipc_objects();
    my ( $rc, $out, $err ) = cli( $args, "value\0" );
    is( $rc, 1, "@$args on a missing share: exit 1" );
    like( $err, qr/\Asharelite: $args->[0] $H \($K\): no such share( \(put --create creates it\))?\n\z/, "@$args: one-line message" );
    is( $out, '', "@$args: nothing on stdout" );
    is_deeply( [ created_since( $before, $K, -1 ) ], [], "@$args: nothing created (ipcs unchanged)" );
    ok( !defined( semget( $K, 0, 0 ) ) && !defined( shmget( $K, 0, 0 ) ), "@$args: no object at $H" );
  }
}

# ------------------------------------------------------------ put / get with ours

my $K1 = new_key();
my @K1_ids;
{
  my $v = mk( 300 * 1024, 'big' );
  my ( $rc, $out, $err ) = cli( [ 'put', $K1, '--create' ], $v );
  is( $rc, 0, 'put --create 300 KB: exit 0' ) or diag $err;
  is( $out . $err, '', 'put prints nothing' );
  ( $rc, $out, $err ) = cli( [ 'get', $K1 ] );
  is( $rc, 0, 'get: exit 0' );
  ok( $out eq $v, 'get returns the 300 KB binary value byte for byte' );
  is( length $out, length $v, 'same length' );

  my $d = stat_json( $K1 );
  @K1_ids = chain_shmids( $K1 );
  my $shm = shm_by_id();
  is_deeply(
    { map { $_ => $d->{$_} } qw(key key_dec segments segment_size length version shm_state readers writers mode owner chain initialised) },
    { key => khex( $K1 ), key_dec => $K1, segments => nsegs( length $v, 65536 ), segment_size => 65536,
      length => length $v, version => 2, shm_state => 1, readers => 0, writers => 0,
      mode => '0666', owner => $ME, chain => 'ok', initialised => 1 },
    'stat --json after put --create: default size and mode, 5 segments, version 2' );
  is_deeply( $d->{shmids}, \@K1_ids, 'stat shmids are the chain in the kernel' );
  is( $d->{shmid}, $K1_ids[0], 'shmid is the head' );
  is( $d->{semid}, semget( $K1, 0, 0 ) + 0, 'semid' );

  for my $small ( "\0", "a\0b\0\0c\xff\x00", mk( 1000, 's' ) ) {
    ( $rc, $out, $err ) = cli( [ 'put', $K1 ], $small );
    is( $rc, 0, 'put without --create on an existing share: exit 0' );
    ( $rc, $out ) = cli( [ 'get', $K1 ] );
    ok( $out eq $small, 'get returns ' . length( $small ) . ' bytes with NULs exactly' );
  }
  $d = stat_json( $K1 );
  is( $d->{segments}, 1,    'shrunk to 1 segment' );
  is( $d->{version},  5,    'version counts every store' );
  is( $d->{shm_state}, 2,   'shm_state bumped once by the shrink' );
  is( $d->{length},   1000, 'length' );
  is_deeply( $d->{shmids}, [ $K1_ids[0] ], 'shmids: the head only' );
  $shm = shm_by_id();
  ok( !grep( { $shm->{$_} } @K1_ids[ 1 .. $#K1_ids ] ), 'the dropped segments are gone' );

  ( $rc, $out, $err ) = cli( [ 'put', $K1 ], '' );
  is( $rc, 0, 'put of empty stdin' );
  ( $rc, $out ) = cli( [ 'get', $K1 ] );
  is( $out, '', 'get returns the empty value' );
  is( stat_json( $K1 )->{length}, 0, 'length 0' );
}

# ------------------------------------------------------------ --create, --mode, --size

my $K2 = new_key();
my $V2 = mk( 10000, 'k2' );
{
  my ( $rc, $out, $err ) = cli( [ 'put', $K2, '--create', '--mode', '0600', '--size', '4096' ], $V2 );
  is( $rc, 0, 'put --create --mode 0600 --size 4096' ) or diag $err;
  my $d = stat_json( $K2 );
  is( $d->{mode},         '0600', 'stat: mode 0600' );
  is( $d->{segment_size}, 4096,   'stat: segment size 4096' );
  is( $d->{segments},     3,      'stat: 10000 bytes in 3 segments of 4096' );
  is( $d->{length},       10000,  'stat: length' );
  my $shm = shm_by_id();
  is_deeply( [ map { $shm->{$_}{mode} . '/' . $shm->{$_}{size} } @{ $d->{shmids} } ],
    [ ( ( 0600 ) . '/4096' ) x 3 ], 'every segment in the kernel: 0600, 4096 bytes' );
  is( sem_by_key()->{$K2}{mode}, 0600, 'semaphore set 0600' );

  ( $rc, $out, $err ) = cli( [ 'put', $K2, '--size', '65536', '--create' ], $V2 x 2 );
  is( $rc, 0, 'put --create --size on an existing share' );
  $d = stat_json( $K2 );
  is( $d->{segment_size}, 4096, 'an existing share keeps its segment size' );
  is( $d->{segments}, nsegs( 20000, 4096 ), 'and chains at that size' );
  is( $d->{mode}, '0600', 'and its mode' );
  ( $rc, $out, $err ) = cli( [ 'put', $K2 ], $V2 );
  is( $rc, 0, 'put again' );

  my $K3 = new_key();
  ( $rc, $out, $err ) = cli( [ 'put', $K3, '--create', '--mode=0640', '--size=100' ], mk( 1000, 'k3' ) );
  is( $rc, 0, 'put --create --mode=0640 --size=100' ) or diag $err;
  $d = stat_json( $K3 );
  is_deeply( [ @$d{qw(mode segment_size segments length)} ], [ '0640', 100, nsegs( 1000, 100 ), 1000 ],
    '--opt=value forms: mode 0640, 100-byte segments, 12 of them' );
  ( $rc, $out ) = cli( [ 'get', $K3 ] );
  ok( $out eq mk( 1000, 'k3' ), 'get across 12 small segments' );
  my @ids = chain_shmids( $K3 );
  ( $rc, $out, $err ) = cli( [ 'rm', $K3 ] );
  is( $rc, 0, 'rm: exit 0' );
  is_deeply( [ chain_shmids( $K3 ) ], [], 'rm: no chain left' );
  ok( share_gone( $K3, @ids ), 'rm: every segment and the semaphore set gone' );

  my $K4 = new_key();
  ( $rc, $out, $err ) = cli( [ 'put', $K4, '--create', '--size', '16' ], 'x' );
  is( stat_json( $K4 )->{segment_size}, 65536, '--size 16 means the default' );
  cli( [ 'rm', $K4 ] );
  ok( share_gone( $K4 ), 'removed' );
}

# ------------------------------------------------------------ list and stat, ours and 0.17

my ( $KO, $VO, @KO_ids );
{
  my $l = list_json();
  my $e = $l->{$K2};
  ok( $e, 'list shows the share made by ours' );
  is_deeply(
    { map { $_ => $e->{$_} } qw(key key_dec segments segment_size length version readers writers mode owner chain) },
    { key => khex( $K2 ), key_dec => $K2, segments => 3, segment_size => 4096, length => 10000, version => 4,
      readers => 0, writers => 0, mode => '0600', owner => $ME, chain => 'ok' },
    'list fields of the ours share' );
  ok( !exists $e->{shmids} && !exists $e->{shm_state}, 'list leaves shmids and shm_state to stat' );
  ok( $l->{$K1}, 'list shows the other ours share' );

  my ( $rc, $out ) = cli( [ 'list' ] );
  is( $rc, 0, 'list (text): exit 0' );
  like( $out, qr/\AKEY\s+DECIMAL\s+SEGMENTS\s+SEGSIZE\s+LENGTH\s+VERSION\s+READERS\s+WRITERS\s+MODE\s+OWNER\s+STATE\n/,
    'list header' );
  my $h2 = khex( $K2 );
  like( $out, qr/^$h2\s+$K2\s+3\s+4096\s+10000\s+4\s+0\s+0\s+0600\s+\Q$ME\E\s+ok$/m, 'list text line of the ours share' );

  # readers and writers, while children of ours hold locks
  my $rel_sh = hold_lock( 'ours', $K2, LOCK_SH, 2 );
  my $rel_ex = hold_lock( 'ours', $K1, LOCK_EX, 1 );
  $l = list_json();
  is_deeply( [ @{ $l->{$K2} }{qw(readers writers)} ], [ 2, 0 ], 'list: 2 readers (LOCK_SH x2), 0 writers' );
  is_deeply( [ @{ $l->{$K1} }{qw(readers writers)} ], [ 0, 1 ], 'list: 0 readers, 1 writer (LOCK_EX)' );
  ( $rc, $out ) = cli( [ 'list' ] );
  like( $out, qr/^$h2\s+$K2\s+3\s+4096\s+10000\s+4\s+2\s+0\s/m, 'list text: 2 readers' );
  is_deeply( [ @{ stat_json( $K1 ) }{qw(readers writers)} ], [ 0, 1 ], 'stat --json while LOCK_EX is held (does not block)' );
  $rel_sh->();
  $rel_ex->();
  $l = list_json();
  is_deeply( [ map { @{ $l->{$_} }{qw(readers writers)} } $K1, $K2 ], [ (0) x 4 ], 'locks released: 0 / 0' );

  SKIP: {
    skip 'reference IPC::ShareLite 0.17 not unpacked (t/tools/fetch-ref)', 28 unless have_ref();
    $KO = new_key( 64 );
    $VO = mk( 10000, 'orig' );
    my ( $rc0 ) = run_impl( 'orig', <<'EOC', $KO );
my $key = shift;
my $v = '';
my $i = 0;
$v .= pack( 'N', $i++ ) . "\0orig\0" . join( '', map { chr } 0 .. 255 ) while length $v < 10000;
my $s = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 0, -size => 4096 ) or die $!;
$s->store( 'first' );
$s->store( substr( $v, 0, 10000 ) );
exit 0;
EOC
    is( $rc0, 0, '0.17 creates a share (-size 4096, 10000 bytes, two stores)' );
    @KO_ids = chain_shmids( $KO );
    my $shm = shm_by_id();
    is_deeply( [ map { $shm->{$_}{key} } @KO_ids ], [ $KO, $KO + 1, $KO + 2 ], 'it is 0.17-made: chain at K, K+1, K+2' );

    $l = list_json();
    $e = $l->{$KO};
    is_deeply(
      { map { $_ => $e->{$_} } qw(key key_dec segments segment_size length version readers writers mode owner chain) },
      { key => khex( $KO ), key_dec => $KO, segments => 3, segment_size => 4096, length => 10000, version => 3,
        readers => 0, writers => 0, mode => '0666', owner => $ME, chain => 'ok' },
      'list fields of the 0.17 share' );
    ok( !$l->{ $KO + 1 } && !$l->{ $KO + 2 }, "0.17's chained segments at K+1, K+2 are not listed as shares" );

    # readers and writers, while 0.17 children hold locks
    my $rel = hold_lock( 'orig', $KO, LOCK_EX, 1, 4096 );
    $l = list_json();
    is_deeply( [ @{ $l->{$KO} }{qw(readers writers)} ], [ 0, 1 ], 'list: 0.17 share, 0 readers, 1 writer (0.17 LOCK_EX)' );
    my $d = stat_json( $KO );
    is_deeply( [ @$d{qw(readers writers)} ], [ 0, 1 ], 'stat --json while LOCK_EX is held (does not block)' );
    $rel->();
    $rel = hold_lock( 'orig', $KO, LOCK_SH, 2, 4096 );
    $l = list_json();
    is_deeply( [ @{ $l->{$KO} }{qw(readers writers)} ], [ 2, 0 ], 'list: 0.17 share, 2 readers (0.17 LOCK_SH x2)' );
    $rel->();
    $l = list_json();
    is_deeply( [ @{ $l->{$KO} }{qw(readers writers)} ], [ 0, 0 ], 'locks released: 0 / 0' );

    # stat of the 0.17 share
    $d = stat_json( $KO );
    is_deeply(
      { map { $_ => $d->{$_} } qw(key key_dec segments segment_size length version shm_state readers writers mode owner chain initialised) },
      { key => khex( $KO ), key_dec => $KO, segments => 3, segment_size => 4096, length => 10000, version => 3,
        shm_state => 1, readers => 0, writers => 0, mode => '0666', owner => $ME, chain => 'ok', initialised => 1 },
      'stat --json of the 0.17 share' );
    is_deeply( $d->{shmids}, \@KO_ids, 'stat shmids of the 0.17 chain' );
    ( $rc, $out ) = cli( [ 'stat', $KO ] );
    like( $out, qr/^shmids:\s+\Q@KO_ids\E$/m, 'stat (text) lists the shmids' );
    like( $out, qr/^shm_state:\s+1$/m, 'stat (text) shows shm_state' );

    # get and rm on the 0.17 share
    ( $rc, $out, my $err ) = cli( [ 'get', $KO ] );
    is( $rc, 0, 'get on the 0.17 share: exit 0' ) or diag $err;
    ok( $out eq $VO, 'get returns the value 0.17 stored, byte for byte' );
    ( $rc, $out, $err ) = cli( [ 'rm', $KO ] );
    is( $rc, 0, 'rm on the 0.17 share: exit 0' ) or diag $err;
    is_deeply( [ chain_shmids( $KO ) ], [], 'rm: chain gone' );
    ok( share_gone( $KO, @KO_ids ), 'rm: segments at K, K+1, K+2 and the semaphore set gone' );
    ok( !defined shmget( $KO + 1, 0, 0 ), 'nothing left at K+1' );
    ok( !list_json()->{$KO}, 'list no longer shows it' );
  }
}

# ------------------------------------------------------------ broken chains

{
  my $K5 = new_key();
  my ( $rc, $out, $err ) = cli( [ 'put', $K5, '--create', '--size', '4096' ], mk( 10000, 'k5' ) );
  my @ids = chain_shmids( $K5 );
  is( scalar @ids, 3, 'a 3-segment share' );

  shmwrite( $ids[2], pack( 'i', $ids[0] ), 0, 4 ) or die "shmwrite: $!";
  my $t0 = time;
  my $e = list_json()->{$K5};
  is( $e->{chain},    'cycle', 'list: a next_shmid cycle shows as cycle' );
  is( $e->{segments}, 3,       'list: each segment counted once' );
  ( $rc, $out ) = cli( [ 'list' ] );
  my $h5 = khex( $K5 );
  like( $out, qr/^$h5\s.*\scycle$/m, 'list text: state cycle' );
  my $d = stat_json( $K5 );
  is( $d->{chain}, 'cycle', 'stat: cycle' );
  like( $d->{error}, qr/links back/, 'stat: says where' );
  ok( time - $t0 < 15, 'no hang' );
  shmwrite( $ids[2], pack( 'i', -1 ), 0, 4 ) or die "shmwrite: $!";

  shmctl( $ids[1], IPC_RMID, 0 ) or die "shmctl: $!";
  $e = list_json()->{$K5};
  is( $e->{chain},    'broken', 'list: a dangling next_shmid shows as broken' );
  is( $e->{segments}, 1,        'list: segments reachable: 1' );
  is( $e->{length},   10000,    'list: length still read' );
  ( $rc, $d ) = jcli( [ 'stat', $K5, '--json' ] );
  is( $rc, 0, 'stat on a broken chain: exit 0' );
  is( $d->{chain}, 'broken', 'stat: broken' );
  is_deeply( $d->{shmids}, [ $ids[0] ], 'stat: shmids up to the break' );
  ( $rc, $out, $err ) = cli( [ 'get', $K5 ] );
  is( $rc, 1, 'get on a broken chain: exit 1' );
  like( $err, qr/\Asharelite: get $h5 \($K5\): [^\n]+\n\z/, 'get: one-line message' );
  ( $rc, $out, $err ) = cli( [ 'rm', $K5 ] );
  is( $rc, 0, 'rm of a broken share: exit 0' ) or diag $err;
  ok( share_gone( $K5, $ids[0] ), 'rm: head and semaphore set gone' );
  shmctl( $ids[2], IPC_RMID, 0 );    # the orphan past the break, if still there
}

# ------------------------------------------------------------ another user

SKIP: {
  skip 'needs root to run the command as another user', 12 unless $> == 0;
  my $nobody = getpwnam( 'nobody' );
  skip 'no user nobody', 12 unless defined $nobody;
  my ( $rc, $out, $err ) = cli( [ 'help' ], undef, uid => $nobody );
  skip "user nobody cannot run the command here (exit $rc)", 12 unless $rc == 0;

  my $before = ipc_objects();
  ( $rc, my $list ) = jcli( [ 'list', '--json' ], undef, uid => $nobody );
  is( $rc, 0, 'list as nobody: exit 0' );
  my $h2 = khex( $K2 );
  SKIP: {
    # Where ipcs reads each segment with IPC_STAT (util-linux without
    # /proc/sysvipc, Solaris), another user's 0600 segment is not listed.
    my ( undef, $keys ) =
      run( [ $^X, '-Iblib/lib', '-MIPC::ShareLite::Inspect', '-e', 'print "$_->{key}\n" for IPC::ShareLite::Inspect::list_segments()' ],
      undef, uid => $nobody );
    skip "this system's listing does not show nobody another user's 0600 segment", 5 unless grep { $_ == $K2 } split /\n/, $keys;
    my ($e) = grep { $_->{key_dec} == $K2 } @{ $list || [] };
    ok( $e, 'the 0600 share is listed for nobody' );
    is_deeply(
      { map { $_ => $e->{$_} } qw(key segment_size mode owner segments length version readers writers chain) },
      { key => khex( $K2 ), segment_size => 4096, mode => '0600', owner => $ME, segments => undef, length => undef,
        version => undef, readers => undef, writers => undef, chain => 'unreadable' },
      'what the listing tells is shown, the rest is null' );
    ( $rc, $out, $err ) = cli( [ 'list' ], undef, uid => $nobody );
    like( $out, qr/^$h2\s+$K2\s+\?\s+4096\s+\?\s+\?\s+\?\s+\?\s+0600\s+\Q$ME\E\s+unreadable$/m, "list text: '?' for the unknown fields" );
    ( $rc, my $d ) = jcli( [ 'stat', $K2, '--json' ], undef, uid => $nobody );
    is( $rc, 0, 'stat as nobody: exit 0' );
    ok( !defined $d->{shm_state} && !defined $d->{shmids}, 'stat: shm_state and shmids unknown' );
  }
  ( $rc, $out, $err ) = cli( [ 'get', $K2 ], undef, uid => $nobody );
  is( $rc, 1, 'get as nobody: exit 1' );
  is( $err, "sharelite: get $h2 ($K2): permission denied\n", 'get as nobody: permission denied' );
  ( $rc, $out, $err ) = cli( [ 'rm', $K2 ], undef, uid => $nobody );
  is( $rc, 1, 'rm as nobody: exit 1' );
  ( $rc, $out, $err ) = cli( [ 'put', $K2 ], 'x', uid => $nobody );
  is( $rc, 1, 'put as nobody: exit 1' );
  ok( stat_json( $K2 )->{version} == 4 && stat_json( $K2 )->{length} == 10000, 'the share is untouched' );
  is_deeply( [ created_since( $before, $K2, -1 ) ], [], 'nobody created nothing' );
}

# ------------------------------------------------------------ --version, usage errors in one line

{
  my ( $rc, $out, $err ) = cli( [ '--version' ] );
  is( $rc, 0, '--version: exit 0' );
  like( $out, qr/\Asharelite \(IPC::ShareLite\) \d+\.\d+\n\z/, '--version: name and version' );
  is( $err, '', '--version: nothing on stderr' );
  ( $rc, $out ) = cli( [ 'list', '--version' ] );
  like( $out, qr/\Asharelite \(IPC::ShareLite\) /, '--version after a command' );

  for my $args ( [ 'frob' ], [ 'get' ], [ 'list', '--bogus' ], [ 'put', '1', '--mode' ], [ 'gc', '--head', 'x' ] ) {
    ( $rc, $out, $err ) = cli( $args );
    is( $rc, 2, "'@$args': exit 2" );
    like( $err, qr/\Asharelite: [^\n]+\nUsage: sharelite COMMAND [^\n]*try 'sharelite --help'[^\n]*\n\z/,
      "'@$args': one line of message, one of usage, a pointer to --help" );
  }
  ( $rc, $out, $err ) = cli( [ 'get', $TOO_LARGE_HEX ] );
  is( $rc, 2, "get $TOO_LARGE_HEX: exit 2" );
  like( $err, qr/\Asharelite: KEY '$TOO_LARGE_HEX' is too large/, "get $TOO_LARGE_HEX: the number is too large" );
  ( $rc, $out, $err ) = cli( [ 'stat', $TOO_LARGE_DEC ] );
  like( $err, qr/\Asharelite: KEY '$TOO_LARGE_DEC' is too large/, "a decimal key over ${\ KEY_BITS} bits: too large" );
  ( $rc, $out, $err ) = cli( [ 'stat', '--', '-2147483649' ] );
  like( $err, qr/\Asharelite: KEY '-2147483649' is not a key/, 'a negative number of more than four characters: no key' );

  ( $rc, $out ) = cli( [ '--help' ] );
  my $pod = do { local ( @ARGV, $/ ) = ( 'bin/sharelite' ); <> };
  my ( $synopsis ) = $pod =~ /^=head1 SYNOPSIS\n\n(.*?)\n=head1/ms;
  my @lines = grep { /^\s+sharelite \w/ } split /\n/, $synopsis;
  ok( @lines >= 8, 'the POD synopsis lists the commands' );
  ok( !grep( { my $l = $_; $l =~ s/^\s+//; index( $out, $l ) < 0 } @lines ), '--help prints the POD synopsis' );
  like( $out, qr/^  sharelite gc \[--remove\]/m, '--help shows gc' );
  like( $out, qr/^  sharelite completion bash\|zsh/m, '--help shows completion' );
}

# ------------------------------------------------------------ gc: orphans of a share whose head is gone

SKIP: {
  my $ipcrm = grep { -x "$_/ipcrm" } split /:/, $ENV{PATH};
  my $K    = new_key( 1 );
  my $dir  = File::Temp::tempdir( 'gc.XXXXXX', DIR => $TMP );
  my $code = <<'EOC';
my ( $key, $dir ) = @ARGV;
my $s = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 0, -size => 4096 ) or die $!;
$s->store( 'y' x 10000 );
open my $fh, '>', "$dir/ready" or die; close $fh;
sleep 1 while 1;
EOC
  my $pid = spawn_impl( 'ours', $code, $K, $dir );
  my $end = time + 20;
  sleep 0.01 until -e "$dir/ready" || time > $end || waitpid( $pid, POSIX::WNOHANG() ) == $pid;
  ok( -e "$dir/ready", 'a child made a 3-segment share' ) or skip 'no share', 33;
  my $head = shmget( $K, 0, 0 );
  my $semid = semget( $K, 0, 0 );
  my @ids = chain_from( $head );
  my ( undef, @chained ) = @ids;
  is( scalar @chained, 2, 'two chained segments' );
  kill 'KILL', $pid;
  is( wait_child( $pid ), 128 + 9, 'the child is killed (SIGKILL)' );

  # A sound share whose chained segments' creator (a sharelite process) is gone too.
  my $KC = new_key( 1 );
  my ( $rc, $out, $err ) = cli( [ 'put', $KC, '--create', '--size', '4096' ], mk( 10000, 'ctl' ) );
  is( $rc, 0, 'a control share of 3 segments' );
  my @ctl = chain_from( shmget( $KC, 0, 0 ) );
  is( scalar @ctl, 3, 'control: 3 segments' );

  if ( $ipcrm ) {
    is( system( 'ipcrm', '-m', $head ), 0, 'ipcrm -m removes the head' );
    is( system( 'ipcrm', '-s', $semid ), 0, 'ipcrm -s removes the semaphore set' );
  } else {
    ok( shmctl( $head, IPC_RMID, 0 ), 'no ipcrm: the head removed with shmctl' );
    ok( semctl( $semid, 0, IPC_RMID, 0 ), 'and the semaphore set' );
  }
  ok( !defined shmget( $K, 0, 0 ), 'the share is gone' );
  my $shm = shm_by_id();
  ok( !grep( { !$shm->{$_} } @chained ), 'its chained segments are still there' );

  my @look = map { ( '--id', $_ ) } @chained, @ctl, $head;
  ( $rc, my $list ) = jcli( [ 'gc', '--json', @look ] );
  is( $rc, 0, 'gc --json: exit 0' );
  my @sorted = sort { $a->{shmid} <=> $b->{shmid} } @{ $list || [] };
  is_deeply( \@sorted,
    [ map { { shmid => $_ + 0, head => $head + 0, size => 4096, mode => '0666', uid => $< + 0, owner => $ME, cpid => $pid,
          reason => 'head gone', removed => undef } } sort { $a <=> $b } @chained ],
    'gc --json: exactly the two orphans, with their head and creator; not the control share' );
  ( $rc, $out, $err ) = cli( [ 'gc', @look ] );
  is( $rc, 0, 'gc (text): exit 0' );
  like( $out, qr/\ASHMID\s+HEAD\s+SIZE\s+MODE\s+OWNER\s+CPID\s+REASON\n/, 'gc: header' );
  for my $id ( @chained ) {
    like( $out, qr/^$id\s+$head\s+4096\s+0666\s+\Q$ME\E\s+$pid\s+head gone\s*$/m, "gc: a line for segment $id" );
  }
  is( scalar( () = $out =~ /\n/g ), 3, 'gc: nothing else' );
  like( $err, qr/dry run/, 'gc: says it is a dry run' );
  $shm = shm_by_id();
  ok( !grep( { !$shm->{$_} } @chained ), 'dry run: nothing removed' );
  ( $rc, $list ) = jcli( [ 'gc', '--json', '--head', $head, @look ] );
  is( scalar @{ $list || [] }, 2, 'gc --head HEAD: both' );
  ( $rc, $list ) = jcli( [ 'gc', '--json', '--head', $head + 1, @look ] );
  is_deeply( $list, [], 'gc --head of another head: none' );

  ( $rc, $out, $err ) = cli( [ 'gc', '--remove', @look ] );
  is( $rc, 0, 'gc --remove: exit 0' ) or diag $err;
  like( $out, qr/\ASHMID\s+HEAD\s+SIZE\s+MODE\s+OWNER\s+CPID\s+REASON\s+RESULT\n/, 'gc --remove: a RESULT column' );
  like( $out, qr/^$_\s.*head gone\s+removed$/m, "gc --remove: $_ removed" ) for @chained;
  $shm = shm_by_id();
  ok( !grep( { $shm->{$_} } @chained ), 'the orphans are gone' );
  ok( !grep( { !$shm->{$_} } @ctl ), 'the control share is whole' );
  ( $rc, $out ) = cli( [ 'get', $KC ] );
  ok( $rc == 0 && $out eq mk( 10000, 'ctl' ), 'and still reads back' );
  ( $rc, $list ) = jcli( [ 'gc', '--json', @look ] );
  is_deeply( $list, [], 'gc again: nothing left' );
  ( $rc, $list ) = jcli( [ 'gc', '--json', '--remove', '--id', $ctl[1] ] );
  is_deeply( $list, [], 'gc --remove on a linked segment: not an orphan, nothing done' );
  ok( shm_by_id()->{ $ctl[1] }, 'it is still there' );
  is( ( cli( [ 'rm', $KC ] ) )[0], 0, 'control share removed' );
  shmctl( $_, IPC_RMID, 0 ) for grep { shm_by_id()->{$_} } @chained, @ctl;    # after a failure
}

# ------------------------------------------------------------ list and stat without /proc/sysvipc (ipcs)

SKIP: {
  skip 'no /proc/sysvipc to compare with (Linux only)', 4 unless -r '/proc/sysvipc/shm';
  skip 'needs root for a mount namespace', 4 unless $> == 0;
  skip 'no ipcs', 4 unless grep { -x "$_/ipcs" } split /:/, $ENV{PATH};
  my $K = new_key( 1 );
  my ( $rc ) = cli( [ 'put', $K, '--create', '--size', '4096', '--mode', '0640' ], mk( 9000, 'ipcs' ) );
  my $hide = 'mount -t tmpfs sharelite-test /proc/sysvipc && exec "$@"';
  my @pre  = ( 'unshare', '--mount', '--', 'sh', '-c', $hide, 'sh' );
  my ( $rc2, $out ) = run( [ @pre, $^X, '-Iblib/lib', '-Iblib/arch', 'bin/sharelite', 'list', '--json' ] );
  if ( $rc2 != 0 && $out eq '' ) {
    cli( [ 'rm', $K ] );
    skip "cannot hide /proc/sysvipc here (exit $rc2)", 4;
  }
  is( $rc2, 0, 'list --json with /proc/sysvipc hidden (ipcs): exit 0' );
  my $all = eval { JSON::PP->new->decode( $out ) } || [];
  my ( $e ) = grep { $_->{key_dec} == $K } @$all;
  is_deeply( $e, list_json()->{$K}, 'the share as listed through ipcs is as listed through /proc' );
  ( $rc2, $out ) = run( [ @pre, $^X, '-Iblib/lib', '-Iblib/arch', 'bin/sharelite', 'stat', $K, '--json' ] );
  is_deeply( eval { JSON::PP->new->decode( $out ) }, stat_json( $K ), 'stat --json through ipcs: the same' );
  cli( [ 'rm', $K ] );
  ok( share_gone( $K ), 'removed' );
}

# ------------------------------------------------------------ completion

{
  my ( $rc, $bash, $err ) = cli( [ 'completion', 'bash' ] );
  is( $rc, 0, 'completion bash: exit 0' );
  like( $bash, qr/complete -F _sharelite sharelite/, 'completion bash: registers _sharelite' );
  ( $rc, my $zsh ) = cli( [ 'completion', 'zsh' ] );
  is( $rc, 0, 'completion zsh: exit 0' );
  like( $zsh, qr/\A#compdef sharelite\n/, 'completion zsh: a #compdef file' );
  ( $rc, undef, $err ) = cli( [ 'completion', 'fish' ] );
  is( $rc, 2, 'completion fish: usage error' );
  ( $rc ) = cli( [ 'completion' ] );
  is( $rc, 2, 'completion without a shell: usage error' );

  # the scripts run for real: a sharelite in PATH that is this build
  my $bin = "$TMP/bin";
  mkdir $bin or die "$bin: $!";
  open my $fh, '>', "$bin/sharelite" or die;
  print {$fh} "#!/bin/sh\nexec '$^X' -I'" . root_dir() . "/blib/lib' -I'" . root_dir() . "/blib/arch' '" . root_dir() . "/bin/sharelite' \"\$@\"\n";
  close $fh;
  chmod 0755, "$bin/sharelite";
  open $fh, '>', "$TMP/comp.bash" or die;
  print {$fh} $bash;
  close $fh;
  my $K = new_key( 1 );
  cli( [ 'put', $K, '--create' ], 'x' );
  SKIP: {
    skip 'no bash', 6 unless grep { -x "$_/bash" } split /:/, $ENV{PATH};
    my $complete = sub {
      my @words = @_;
      my $script = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _sharelite; printf "%s\n" "${COMPREPLY[@]}"';
      my ( $rc, $out ) = run( [ 'bash', '--norc', '-c', $script, 'bash', "$TMP/comp.bash", @words ], undef, path => "$bin:$ENV{PATH}" );
      return [ sort grep { length } split /\n/, $out ];
    };
    is( system( 'bash', '-n', "$TMP/comp.bash" ), 0, 'bash -n: the script parses' );
    is_deeply( $complete->( 'sharelite', 'g' ), [qw(gc get)], 'bash: sharelite g<TAB>' );
    is_deeply( $complete->( 'sharelite', 'put', '5', '--' ), [qw(--create --help --mode --size)], 'bash: put options' );
    is_deeply( $complete->( 'sharelite', 'gc', '--' ), [qw(--head --help --id --json --remove)], 'bash: gc options' );
    is_deeply( $complete->( 'sharelite', 'completion', '' ), [qw(bash zsh)], 'bash: completion shells' );
    ok( grep( { $_ eq khex( $K ) } @{ $complete->( 'sharelite', 'get', '0x' ) } ), 'bash: get completes the keys of the shares' );
  }
  SKIP: {
    skip 'no zsh', 2 unless grep { -x "$_/zsh" } split /:/, $ENV{PATH};
    open $fh, '>', "$TMP/_sharelite" or die;
    print {$fh} $zsh;
    close $fh;
    is( system( 'zsh', '-n', "$TMP/_sharelite" ), 0, 'zsh -n: the script parses' );
    my ( $rc, $out ) = run( [ 'zsh', '-f', '-c', 'autoload -U compinit && compinit -u -D && source "$1" && print -r -- $_comps[sharelite]', 'zsh', "$TMP/_sharelite" ] );
    is( $out, "_sharelite\n", 'zsh: sourced, it registers _sharelite for sharelite' );
  }
  cli( [ 'rm', $K ] );
}

# ------------------------------------------------------------ run from a built tree, and its manual

{
  my $K = new_key( 1 );
  my ( $rc, $out, $err ) = run( [ $^X, '-Mblib', 'blib/script/sharelite', 'put', $K, '--create' ], 'via -Mblib' );
  is( $rc, 0, 'perl -Mblib blib/script/sharelite put: exit 0' ) or diag $err;
  ( $rc, $out, $err ) = run( [ $^X, root_dir() . '/bin/sharelite', 'get', $K ], undef, cwd => '/' );
  is( $rc, 0, 'bin/sharelite without -I, from another directory: exit 0' ) or diag $err;
  is( $out, 'via -Mblib', '... it found the build next to it' );
  ( $rc, $out, $err ) = run( [ $^X, root_dir() . '/blib/script/sharelite', 'get', $K ], undef, cwd => '/' );
  is( $out, 'via -Mblib', 'blib/script/sharelite without -Mblib too' );
  cli( [ 'rm', $K ] );
  ok( share_gone( $K ), 'removed' );

  SKIP: {
    skip 'no working perldoc', 2 unless ( run( [ 'perldoc', '-V' ] ) )[0] == 0;
    ( $rc, $out ) = run( [ 'perldoc', '-U', '-T', 'bin/sharelite' ] );
    like( $out, qr/^NAME\n\s+sharelite - list, read, write and remove/m, 'perldoc bin/sharelite (before install)' );
    ( $rc, $out ) = run( [ 'perldoc', '-U', '-T', 'sharelite' ], undef, path => root_dir() . "/blib/script:$ENV{PATH}" );
    like( $out, qr/^NAME\n\s+sharelite - list/m, 'perldoc sharelite finds the script in PATH (as installed)' );
  }
  SKIP: {
    # A perl configured without man pages (installman1dir empty or 'none', as
    # ./Configure -des with a prefix may leave it) makes MakeMaker build none.
    my $mandir = $Config::Config{installman1dir} // '';
    skip 'this perl installs no man pages', 1 unless $mandir =~ /\S/ && $mandir ne 'none';
    ok( -f 'blib/man1/sharelite.1p' || glob( 'blib/man1/sharelite.*' ), 'make built its man page' );
  }
}

# ------------------------------------------------------------ rm of ours shares

for my $K ( $K1, $K2 ) {
  my @ids = chain_shmids( $K );
  ok( scalar @ids, khex( $K ) . ' exists before rm' );
  my ( $rc, $out, $err ) = cli( [ 'rm', $K ] );
  is( $rc, 0, 'rm ' . khex( $K ) . ': exit 0' ) or diag $err;
  is( $out . $err, '', 'rm prints nothing' );
  is_deeply( [ chain_shmids( $K ) ], [], 'rm: chain_shmids empty' );
  ok( share_gone( $K, @ids ), 'rm: every segment and the semaphore set gone' );
  ( $rc, $out, $err ) = cli( [ 'rm', $K ] );
  is( $rc, 1, 'rm again: exit 1 (no such share)' );
}

no_leaks_ok();
done_testing();
