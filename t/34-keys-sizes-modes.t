# Covers: one parser each for keys, sizes and modes, in IPC::ShareLite, used
# by the module and by the sharelite command; the two agree through real
# shares, both ways (what one makes, the other finds and reads):
#  - keys (doc/FORMAT.md, section 7): the module's rule (digits are a
#    number, up to 4294967295; strings of at most four characters, '-1' and
#    '0x10' included, as in 0.17; 0.17's messages and "too large", at the
#    caller; a 64-bit key_t on the BSDs); IPC::ShareLite loads no
#    IPC::ShareLite::Inspect; the command reads KEY with the module's
#    function: a share made by new( -key => $string ) with a string that
#    starts with '-' is found by `sharelite get -- $string`, and the other
#    way round; list's hex and DECIMAL columns given back to either; the
#    command's one extra form (0x and three or more hex digits, which the
#    module refuses) and what both refuse; the command's stat from a tree
#    not built yet (the parsers need no XS part);
#  - sizes: --size and -size read the same strings ('100k', '1K', '4096')
#    into the same segment size, and refuse the same ones with the same
#    reason;
#  - modes: --mode and -mode read strings of digits as octal and 'rw-r-----'
#    as ls shows it, into the same permission bits, and refuse the same ones
#    ('999', '1777', '0o640'); numbers stay numbers (0640; the number 640 is
#    refused as beyond 0777, saying how to write it); 0 and '0' are the
#    default 0666; a string stays a string after use as a number; the rule
#    for perls before 5.36 (a printed number is the number) is checked by
#    switching to it.
# Keys come from SLTest's new_key; every share made here is removed.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT perms_of_sem perms_of_shm real_size exists_share new_bounded);
use Test::More;
use Errno qw( EINVAL );
use File::Temp ();
use JSON::PP ();
use POSIX ();
use IPC::ShareLite qw( :all );

plan skip_all => 'the shared parsers are new in 0.18' if impl_under_test() eq 'orig';
watchdog( 180 );
chdir root_dir() or die "chdir: $!";

my $ME  = quotemeta __FILE__;
my $TMP = File::Temp::tempdir( 'slkeys.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
my $N   = 0;
my $LE  = pack( 'L', 1 ) eq "\1\0\0\0";

# Run bin/sharelite with this build; (exit code, stdout, stderr).
sub cli {
  my ( $args, $stdin ) = @_;
  my $n = $N++;
  open my $fh, '>:raw', "$TMP/in.$n" or die "$TMP/in.$n: $!";
  print {$fh} defined $stdin ? $stdin : '';
  close $fh or die;
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    open STDIN,  '<', "$TMP/in.$n"  or POSIX::_exit( 97 );
    open STDOUT, '>', "$TMP/out.$n" or POSIX::_exit( 97 );
    open STDERR, '>', "$TMP/err.$n" or POSIX::_exit( 97 );
    delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
    exec( $^X, '-Iblib/lib', '-Iblib/arch', 'bin/sharelite', @$args ) or POSIX::_exit( 98 );
  }
  my $rc = wait_child( $pid );
  my @r = map { local ( @ARGV, $/ ) = ( "$TMP/$_.$n" ); my $t = <>; defined $t ? $t : '' } qw(out err);
  return ( $rc, @r );
}

sub stat_json {
  my ( $rc, $out, $err ) = cli( [ 'stat', '--json', '--', shift ] );
  return $rc == 0 ? JSON::PP->new->decode( $out ) : do { diag "stat: $err"; undef };
}

sub khex { sprintf '0x%08x', $_[0] & 0xffffffff }

# The module's verdict on -key $s: the key, or 'refused'.
sub module_key { my $k = eval { IPC::ShareLite::_key_from_string( $_[0] ) }; defined $k ? $k : 'refused' }

# ------------------------------------------------------------ the module's key rule

{
  my %module = (
    'abcd'       => unpack( 'i', pack( 'A4', 'abcd' ) ),
    'ab'         => unpack( 'i', pack( 'A4', 'ab' ) ),
    '1971'       => '1971',
    '0123'       => '0123',
    '-1'         => unpack( 'i', pack( 'A4', '-1' ) ),
    '-5'         => unpack( 'i', pack( 'A4', '-5' ) ),
    '0x10'       => unpack( 'i', pack( 'A4', '0x10' ) ),
    '4294967295' => '4294967295',
    ''           => 0,
  );
  for my $s ( sort keys %module ) {
    is( IPC::ShareLite::_key_from_string( $s ), $module{$s}, "module key '$s'" );
  }
  is( IPC::ShareLite::_key_from_string( undef ), 0, 'undef is IPC_PRIVATE' );
  is( IPC::ShareLite::_key_from_string( -1 ), $module{'-1'}, 'the number -1 is the string "-1", as in 0.17' );
  for my $c ( [ 'abcde', qr/^Key must be a number or four character string at $ME line/ ],
    [ "\x{263a}", qr/^\x{263a} is not 8-bit clean at $ME line/ ], [ '4294967296', qr/^Key 4294967296 is too large: a key_t has 32 bits at / ],
    [ '99999999999999999999', qr/too large/ ], [ '0x123456789', qr/four character/ ], [ '-12345', qr/four character/ ] )
  {
    my ( $s, $re ) = @$c;
    ( my $name = $s ) =~ s/([^\x20-\x7e])/sprintf '\\x{%x}', ord $1/ge;
    ok( !eval { IPC::ShareLite::_key_from_string( $s ); 1 }, "key '$name' refused" );
    like( $@, $re, '... with the message, at the caller' );
  }
  my $k = new_key( 1 );
  ok( !new_bounded( -key => 'abcde', -create => 'yes', -destroy => 'yes' ), "new( -key => 'abcde' ) croaks" );
  like( $@, qr/^Key must be a number or four character string at $ME line/, '... with 0.17\'s message, at the caller' );
  my $s = new_bounded( -key => "$k", -create => 'yes', -destroy => 'yes' );
  is( $s && $s->key, "$k", 'new( -key => digits ): the key accessor gives the number' );
  undef $s;
}

# The module loads nothing of IPC::ShareLite::Inspect, only the key_t width.
{
  my $code = 'use IPC::ShareLite; print join( ",", grep { m{^IPC/ShareLite/} } sort keys %INC ), "\n"';
  open my $fh, '-|', $^X, '-Iblib/lib', '-Iblib/arch', '-e', $code or die "perl: $!";
  my $out = <$fh>;
  close $fh;
  is( $out, "IPC/ShareLite/KeyT.pm\n", 'use IPC::ShareLite loads no IPC::ShareLite::Inspect (only IPC::ShareLite::KeyT)' );
}

# A 64-bit key_t (the BSDs), in a perl that takes itself for FreeBSD.
SKIP: {
  require Config;
  skip 'a 32-bit perl', 1 unless $Config::Config{longsize} == 8;
  my $code = <<'EOC';
BEGIN { $^O = 'freebsd' }
use IPC::ShareLite;
my @r = ( IPC::ShareLite::_KEY_BITS(), IPC::ShareLite::_key_from_string( '18446744073709551615' ),
  IPC::ShareLite::_key_from_string( 'abcd' ) );
push @r, eval { IPC::ShareLite::_key_from_string( '18446744073709551616' ) } ? 'accepted'
  : $@ =~ /too large: a key_t has 64 bits/ ? 'too large' : $@;
print join( ',', @r ), "\n";
EOC
  open my $fh, '-|', $^X, '-Iblib/lib', '-Iblib/arch', '-e', $code or die "perl: $!";
  my $out = <$fh>;
  close $fh;
  is( $out, join( ',', 64, '18446744073709551615', unpack( 'i', pack( 'A4', 'abcd' ) ), 'too large' ) . "\n",
    'a 64-bit key_t: wider numbers, the same string keys, "too large" past 64 bits' );
}

# ------------------------------------------------------------ the command reads KEY as the module does

# From a tree not built yet (lib/ and bin/ only), the command still reads
# keys with the module's parser (the module loads its XS part last), and says
# the module is not built when it needs the core.
{
  require File::Copy;
  require File::Path;
  my $tree = "$TMP/unbuilt";
  File::Path::make_path( "$tree/bin", "$tree/lib/IPC/ShareLite" );
  File::Copy::copy( "lib/IPC/$_", "$tree/lib/IPC/$_" ) or die "copy $_: $!" for 'ShareLite.pm', 'ShareLite/Inspect.pm', 'ShareLite/KeyT.pm';
  File::Copy::copy( 'bin/sharelite', "$tree/bin/sharelite" ) or die "copy: $!";
  open my $fh, '>', "$tree/Makefile.PL" or die;
  close $fh;
  my $k = new_key( 1 );
  my $run = sub {
    my $pid = fork // die "fork: $!";
    if ( !$pid ) {
      open STDERR, '>', "$TMP/unbuilt.err" or POSIX::_exit( 97 );
      open STDOUT, '>', '/dev/null' or POSIX::_exit( 97 );
      delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
      exec( $^X, "$tree/bin/sharelite", @_ ) or POSIX::_exit( 98 );
    }
    my $rc = wait_child( $pid );
    return ( $rc, do { local ( @ARGV, $/ ) = ( "$TMP/unbuilt.err" ); <> // '' } );
  };
  my ( $rc, $err ) = $run->( 'stat', 'abcde' );
  is( $rc, 2, 'an unbuilt tree: stat refuses the KEY the module refuses' );
  ( $rc, $err ) = $run->( 'stat', $k );
  like( "$rc $err", qr/\A1 sharelite: cannot load IPC::ShareLite \(not built\? perl Makefile\.PL && make\)/,
    '... and, reading a good KEY, says the module is not built (the core looks at shares)' );
  ( $rc, $err ) = $run->( 'get', $k );
  like( "$rc $err", qr/\A1 sharelite: cannot load IPC::ShareLite \(not built\? perl Makefile\.PL && make\)/,
    '... get says the module is not built' );
}

# Read-only: stat names the key it looked at (missing or not, whatever is
# at these keys on this host).
sub stat_key {
  my ( $rc, $out, $err ) = cli( [ 'stat', '--', shift ] );
  return "exit $rc" if $rc == 2;
  return ( "$out$err" =~ /(0x[0-9a-f]{8})/ )[0] // "exit $rc: $err$out";
}
for my $s ( '-1', '-5', '0x10', 'ab', 'abcd', '1971', '0123', '4294967295', '4294967294' ) {
  is( stat_key( $s ), khex( module_key( $s ) ), "sharelite stat $s: the key new( -key => '$s' ) makes" );
}
is( stat_key( '0x010' ), '0x00000010', 'sharelite stat 0x010: hex, which the module refuses as a string' );
is( module_key( '0x010' ), 'refused', '... (it does)' );
is( stat_key( '0XFFFFFFFE' ), '0xfffffffe', 'sharelite stat 0XFFFFFFFE: upper case hex' );
for my $s ( 'abcde', '-12345', '-2147483649', '0x123456789', '4294967296', '0', '00', '0x000', "0x1g0" ) {
  is( stat_key( $s ), 'exit 2', "sharelite stat $s: refused (usage error)" );
}

# Both ways through real shares, at a decimal key.
{
  my $k = new_key( 1 );
  my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes' ) or diag $@;
  $s->store( "made by the module at $k" );
  my ( $rc, $out, $err ) = cli( [ 'get', $k ] );
  is( "$rc $out", "0 made by the module at $k", 'sharelite get DECIMAL reads what new( -key => DECIMAL ) stored' );
  ( $rc, $out ) = cli( [ 'list', '--json' ] );
  my ( $row ) = grep { $_->{key} eq khex( $k ) } @{ JSON::PP->new->decode( $out ) };
  is( $row && $row->{key_dec}, $k, 'list --json: key_dec is the decimal key' );
  ( $rc, $out ) = cli( [ 'list' ] );
  my ( $hex, $dec ) = $out =~ /^(${\ khex($k)})\s+(\d+)\s/m;
  is( $dec, $k, 'list: the DECIMAL column' );
  ( $rc, $out ) = cli( [ 'get', $hex ] );
  is( $out, "made by the module at $k", 'sharelite get with the KEY column of list' );
  ( $rc, $out ) = cli( [ 'put', $dec ], 'made by the command' );
  is( $rc, 0, 'sharelite put with the DECIMAL column of list' );
  my $t = new_bounded( -key => "$dec" ) or diag $@;
  is( $t && $t->fetch, 'made by the command', 'new( -key => DECIMAL from list ) reads what the command stored' );
  is( $s->fetch, 'made by the command', '... the same share' );
  undef $t;
  undef $s;
  ok( !exists_share( $k ), 'removed' );
}

# Both ways, at a key made from a string that starts with '-' (as '-1'
# does): the command reads it as the module does, not as a negative number.
SKIP: {
  skip 'a big-endian host: no string starting with "-" falls in the test keys', 9 unless $LE;
  my ( $k, $str );
  for ( 1 .. 3000 ) {
    my $c = new_key( 1 );
    my $b = pack( 'V', $c );
    next unless ( $c & 0xff ) == ord( '-' ) && $b !~ /\0/;
    ( $k, $str ) = ( $c, $b );
    last;
  }
  skip 'no test key whose bytes start with "-" came up', 9 unless defined $k;
  is( IPC::ShareLite::_key_from_string( $str ), $k, 'a four-character string key starting with "-"' );
  my $s = new_bounded( -key => $str, -create => 'yes', -destroy => 'yes' ) or diag $@;
  is( $s && $s->key, $k, '... new( -key => $string ) uses it' );
  $s->store( 'made by the module' );
  my ( $rc, $out, $err ) = cli( [ 'get', '--', $str ] );
  is( $rc, 0, 'sharelite get -- $string: exit 0' ) or diag $err;
  is( $out, 'made by the module', '... reads the share new( -key => $string ) made' );
  is( stat_json( $str )->{key_dec}, $k, '... stat -- $string: the same key' );
  ( $rc, $out, $err ) = cli( [ 'put', '--', $str ], 'made by the command' );
  is( $rc, 0, 'sharelite put -- $string' ) or diag $err;
  is( $s->fetch, 'made by the command', '... the module reads it' );
  undef $s;
  ok( !exists_share( $k ), 'removed by the module' );
  ( $rc, $out, $err ) = cli( [ 'put', '--create', '--', $str ], 'x' );
  ( $rc, $out, $err ) = cli( [ 'rm', '--', $str ] );
  ok( $rc == 0 && !exists_share( $k ), 'sharelite put --create and rm with the string' );
}

# ------------------------------------------------------------ sizes: the same strings, the same sizes

for my $c ( [ '100k', 102_400 ], [ '1K', 1024 ], [ '4096', 4096 ], [ '2m', 2 * 1024 * 1024 ], [ '16', 65536 ] ) {
  my ( $arg, $bytes ) = @$c;
  my ( $k1, $k2 ) = ( new_key( 1 ), new_key( 1 ) );
  my ( $rc, $out, $err ) = cli( [ 'put', $k1, '--create', '--size', $arg ], 'x' );
  is( $rc, 0, "sharelite put --size $arg: exit 0" ) or diag $err;
  is( real_size( $k1 ), $bytes, "... a segment of $bytes bytes" );
  my $s = new_bounded( -key => $k1 );
  is( $s && $s->size, $bytes, '... the module opens it at that size' );
  undef $s;
  $s = new_bounded( -key => $k2, -create => 'yes', -destroy => 'no', -size => $arg ) or diag $@;
  is( stat_json( $k2 )->{segment_size}, $bytes, "new( -size => '$arg' ): sharelite stat says $bytes bytes" );
  undef $s;
  for my $k ( $k1, $k2 ) {
    ( $rc, undef, $err ) = cli( [ 'rm', $k ] );
    ok( $rc == 0 && !exists_share( $k ), 'sharelite rm' ) or diag $err;
  }
}
for my $bad ( '1.5M', '10KB', '-1', '4T', '0x100', '99999999999G' ) {
  my $k = new_key( 1 );
  my ( $rc, $out, $err ) = cli( [ 'put', $k, '--create', '--size', $bad ], 'x' );
  is( $rc, 2, "sharelite put --size $bad: usage error" );
  my ( $cli_why ) = $err =~ /\Asharelite: --size (.*)\n/;
  ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => $bad ), "new( -size => '$bad' ) croaks" );
  my ( $mod_why ) = $@ =~ /\AFailed to create share: Invalid argument \(-size (.*)\) at $ME line/;
  ok( defined $mod_why, '... Invalid argument (-size ...), at the caller' ) or diag $@;
  is( $cli_why, $mod_why, '... for the same reason as the command' );
  ok( !exists_share( $k ), '... nothing created' );
}

# ------------------------------------------------------------ modes: the same strings, the same bits

for my $c ( [ '640', 0640 ], [ '0640', 0640 ], [ '600', 0600 ], [ '00644', 0644 ], [ 'rw-r-----', 0640 ], [ '0', 0666 ],
  ( $> == 0 ? ( [ '000', 0 ] ) : () ) )
{
  my ( $arg, $bits ) = @$c;
  my $show = sprintf '%04o', $bits;
  my ( $k1, $k2 ) = ( new_key( 1 ), new_key( 1 ) );
  my ( $rc, $out, $err ) = cli( [ 'put', $k1, '--create', '--mode', $arg, '--size', 100 ], 'y' x 250 );
  is( $rc, 0, "sharelite put --mode $arg: exit 0" ) or diag $err;
  is( perms_of_sem( $k1 ), $bits, "... the semaphore set has $show" );
  is_deeply( [ map { perms_of_shm( $_ ) } chain_shmids( $k1 ) ], [ ($bits) x 3 ], "... each of 3 segments has $show" );
  my $s = new_bounded( -key => $k2, -create => 'yes', -destroy => 'yes', -mode => $arg ) or diag $@;
  is( $s && $s->mode, $bits, "new( -mode => '$arg' ): mode $show" );
  is( perms_of_sem( $k2 ), $bits, "... the semaphore set has $show" );
  undef $s;
  ( $rc, undef, $err ) = cli( [ 'rm', $k1 ] );
  ok( $rc == 0 && !exists_share( $k1 ) && !exists_share( $k2 ), 'both removed' ) or diag $err;
}
for my $bad ( '999', '1777', '8', '0o640', '0x1b6', 'rw-r--r', ' 640', '1e3', '+640' ) {
  my $k = new_key( 1 );
  my ( $rc, $out, $err ) = cli( [ 'put', $k, '--create', '--mode', $bad ], 'x' );
  is( $rc, 2, "sharelite put --mode '$bad': usage error" );
  like( $err, qr/\Asharelite: --mode '\Q$bad\E' /, '... naming the mode' );
  ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => $bad ), "new( -mode => '$bad' ) croaks" );
  like( $@, qr/\AFailed to create share: Invalid argument \(-mode .*\Q$bad\E.*\) at $ME line/, '... Invalid argument (-mode ...)' );
  is( $! + 0, EINVAL, '... $! is EINVAL' );
  ok( !exists_share( $k ), '... nothing created' );
}
{
  my ( undef, $err ) = ( cli( [ 'put', new_key( 1 ), '--create', '--mode', '1777' ], 'x' ) )[ 0, 2 ];
  like( $err, qr/\Asharelite: --mode '1777' \(octal\) is beyond 0777, the permission bits\n/, "--mode 1777: beyond 0777" );
  ok( !new_bounded( -key => new_key( 1 ), -create => 'yes', -mode => '1777' ), "-mode => '1777' croaks" );
  like( $@, qr/\(-mode '1777' \(octal\) is beyond 0777, the permission bits\)/, '... for the same reason' );
}

# Numbers stay numbers; 0 means the default.
{
  my @ok = ( [ 0640, 0640, 'the number 0640' ], [ 0600, 0600, 'the number 0600' ], [ 0, 0666, 'the number 0' ],
    [ '', 0666, "''" ], [ 0777, 0777, 'the number 0777' ] );
  for my $c ( @ok ) {
    my ( $arg, $bits, $name ) = @$c;
    my $k = new_key( 1 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => $arg ) or diag $@;
    is( $s && $s->mode, $bits, sprintf '-mode => %s: mode %04o', $name, $bits );
    is( perms_of_sem( $k ), $bits, '... on the semaphore set' );
  }
  for my $c ( [ 640, qr/\(-mode 640 \(01200 in octal\) is beyond 0777, the permission bits: a number is taken as it is \(for 0640, write 0640 or '640'\)\)/ ],
    [ 0777777, qr/\(-mode 262143 \(0777777 in octal\) is beyond 0777, the permission bits\)/ ],
    [ 01000, qr/\(-mode 512 \(01000 in octal\) is beyond 0777/ ] )
  {
    my ( $arg, $re ) = @$c;
    my $k = new_key( 1 );
    ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => $arg ), "-mode => the number $arg croaks" );
    like( $@, qr/\AFailed to create share: Invalid argument $re.* at $ME line/, '... saying why' );
    ok( !exists_share( $k ), '... nothing created' );
  }
  my $flagged = new_bounded( -key => new_key( 1 ), -flags => IPC_CREAT | 0640, -destroy => 'yes', -mode => 0777777 );
  is( $flagged && $flagged->mode, undef, '-flags stays raw: -mode is not even read' );
}

# A string of digits stays a string after use as a number, and a number
# after use as a string (perl 5.36's rule); the rule for older perls, where
# a printed number looks like a string too, takes the plain decimal digits
# of a value that is both as the number.
{
  my $parse = sub { my @r = IPC::ShareLite::_parse_mode( $_[0] ); defined $r[1] ? 'refused' : sprintf '%04o', $r[0] // 0666 };
  my $str  = '640';
  my $used = $str + 0;
  my $zstr = '0640';
  $used = $zstr + 0;
  my $num = 0640;
  my $printed = "$num";
  my $old_printed = '416';    # what a printed 0640 looks like on perls before 5.36
  $used = $old_printed + 0;
  {
    local $IPC::ShareLite::_POK_MEANS_STRING = 1;
    is( $parse->( $str ),  '0640', "'640' used as a number: still the string, octal" );
    is( $parse->( $zstr ), '0640', "'0640' used as a number: octal" );
    is( $parse->( $num ),  '0640', '0640 used as a string: still the number' );
  }
  {
    local $IPC::ShareLite::_POK_MEANS_STRING = 0;
    is( $parse->( $old_printed ), '0640', 'the older rule: a value that is both, in plain decimal, is the number' );
    is( $parse->( $str ),  'refused', "... so '640' used as a number is the number 640, refused" );
    is( $parse->( $zstr ), '0640', "... '0640' (a leading zero) stays a string" );
    is( $parse->( '640' ), '0640', '... a string never used as a number stays a string' );
    is( $parse->( $num ),  '0640', '... a number stays a number' );
  }
}

no_leaks_ok();
done_testing;
