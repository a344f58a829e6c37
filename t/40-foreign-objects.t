# Covers: the suite leaves alone the SysV objects of others. In a private
# IPC and pid namespace (this file re-executes itself under unshare; it
# skips where none can be had), it seeds foreign objects: a share at the
# string key "foo" (semaphore set and a 3-segment chain, made by a process
# whose pid a test file then gets: "foo" is 0x206f6f66, in the 0.17-era key
# block 0x20000000 + pid*256 of pid 0x6f6f), and for each test file a plain
# segment made by the pid that file will run as, a segment and a semaphore
# set in that pid's old key block, and objects at the first keys the key
# picker will try (SLTEST_KEY_SEED fixes them). It then runs every other
# t/*.t as that pid, and after each checks every seeded object byte for byte
# (id, key, mode, size, creator, content; semaphore values), and at the end
# that the namespace holds exactly the seeded objects: nothing removed,
# nothing left behind.

use strict;
use warnings;
use lib 't/lib';
use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use File::Temp ();
use IPC::SysV qw(IPC_CREAT IPC_PRIVATE SETVAL GETVAL);
use POSIX ();
use Test::More;
use SLTest ();
BEGIN { *sysv_segments = \&SLTest::sysv_segments; *sysv_semaphores = \&SLTest::sysv_semaphores; *root_dir = \&SLTest::root_dir }

my $root = root_dir();
my $me   = abs_path( $0 );

# --- into a private namespace ------------------------------------------------
unless ( $ENV{SLTEST_FOREIGN_INSIDE} ) {
  my @ns = ( '--ipc', '--pid', '--fork', '--mount-proc' );
  my @how = ( $> == 0 ? ( [@ns] ) : (), [ '--user', '--map-root-user', @ns ] );
  my ( $use ) = grep { system( 'unshare', @$_, '--', 'true' ) == 0 } @how;
  plan skip_all => 'no private IPC and pid namespace here (unshare --ipc --pid)' unless $use;
  $ENV{SLTEST_FOREIGN_INSIDE} = 1;
  exec( 'unshare', @$use, '--', $^X, ( map { "-I$_" } grep { !ref } @INC ), $me ) or die "exec unshare: $!";
}
chdir $root or die "chdir $root: $!";

my $LAST_PID = '/proc/sys/kernel/ns_last_pid';
plan skip_all => "cannot choose pids here ($LAST_PID)" unless -w $LAST_PID;
plan skip_all => 'build first (blib missing)' unless -d "$root/blib/arch";

# Fork with pid $pid (the namespace is ours: nobody else forks in it).
sub fork_as {
  my $pid = shift;
  open my $fh, '>', $LAST_PID or die "$LAST_PID: $!";
  print {$fh} $pid - 1;
  close $fh or die "$LAST_PID: $!";
  my $got = fork // die "fork: $!";
  return $got;
}

# Run $code in a process of pid $pid; dies unless it got that pid and exited 0.
sub as_pid {
  my ( $pid, $code ) = @_;
  my $got = fork_as( $pid );
  if ( !$got ) {
    my $ok = eval { $code->(); 1 };
    print STDERR "# seeding as pid $$: $@" unless $ok;
    POSIX::_exit( $ok && $$ == $pid ? 0 : 1 );
  }
  waitpid( $got, 0 );
  die "seeding process got pid $got, not $pid\n" unless $got == $pid;
  die "seeding as pid $pid failed (status $?)\n" if $?;
}

# --- what there is ---------------------------------------------------------------

sub content {
  my ( $id, $size ) = @_;
  my $buf;
  shmread( $id, $buf, 0, $size ) or return "unreadable: $!";
  return md5_hex( $buf );
}

# "shm ID" / "sem ID" => description of every object in the namespace.
sub snapshot {
  my %o;
  for my $r ( sysv_segments() ) {
    $o{"shm $r->{id}"} = sprintf 'key=%d mode=%o removed=%s size=%d cpid=%d content=%s', $r->{key}, $r->{mode},
      $r->{removed} // '?', $r->{size}, $r->{cpid}, content( $r->{id}, $r->{size} );
  }
  for my $r ( sysv_semaphores() ) {
    my @v = map { my $v = semctl( $r->{id}, $_, GETVAL, 0 ); defined $v ? 0 + $v : 'err' } 0 .. $r->{nsems} - 1;
    $o{"sem $r->{id}"} = sprintf 'key=%d mode=%o nsems=%d values=%s', $r->{key}, $r->{mode}, $r->{nsems}, "@v";
  }
  return \%o;
}

# --- the foreign objects -------------------------------------------------------------

sub seg {
  my ( $key, $size, $fill ) = @_;
  my $id = shmget( $key, $size, 0640 | IPC_CREAT | IPC::SysV::IPC_EXCL() ) // die sprintf "shmget 0x%08x: $!\n", $key;
  my $data = substr( $fill x ( int( $size / length $fill ) + 1 ), 0, $size );
  shmwrite( $id, $data, 0, $size ) or die "shmwrite: $!\n";
  return $id;
}

sub semset {
  my ( $key, @v ) = @_;
  my $id = semget( $key, scalar @v, 0640 | IPC_CREAT | IPC::SysV::IPC_EXCL() ) // die sprintf "semget 0x%08x: $!\n", $key;
  semctl( $id, $_, SETVAL, $v[$_] ) or die "semctl: $!\n" for 0 .. $#v;
  return $id;
}

my @files = grep { $_ ne 't/40-foreign-objects.t' } sort glob 't/*.t';
my $FOO   = unpack 'i', 'foo ';    # the key 0.17 and ours make of "foo"
my %seeded_by;                     # "shm ID"/"sem ID" => what it is

# "foo": a share of another program (ours, default mode, 3 segments of 4096
# bytes), made by the pid the first test file runs as.
# The other files run as pids spread out below it, far enough apart for the
# processes each file starts.
my $gap  = int( ( 0x6f6f - 1000 ) / @files );
my @pids = ( 0x6f6f, map { 1000 + $gap * $_ } 1 .. $#files );
as_pid( $pids[0], sub {
  require IPC::ShareLite;
  my $s = IPC::ShareLite->new( -key => 'foo', -create => 1, -destroy => 0, -size => 4096 );
  $s->store( join '', map { chr( $_ % 251 ) } 1 .. 10_000 );
} );
$seeded_by{$_} = 'the share at "foo"'
  for ( map { "shm $_->{id}" } sysv_segments() ), map { "sem $_->{id}" } sysv_semaphores();
cmp_ok( scalar( keys %seeded_by ), '>=', 4, 'a share at key "foo": a semaphore set and a chain of 3' );

for my $i ( 0 .. $#files ) {
  my ( $file, $pid ) = ( $files[$i], $pids[$i] );
  my $block = 0x20000000 + ( $pid & 0x3FFFFF ) * 256;
  # (a library without a key picker has no keys to try: then the block again)
  my @cand = SLTest->can( 'key_candidates' ) ? SLTest::key_candidates( "foreign$i", 4 ) : map { $block + 16 * $_ } 3 .. 6;
  my $before = snapshot();
  as_pid( $pid, sub {
    seg( IPC_PRIVATE, 100, "made by pid $$ " );
    seg( $block + 1, 200, "in the old block of $pid " );
    semset( $block + 2, 0, 7, 3 );
    seg( $cand[0], 300, 'at a key the picker tries first ' );
    semset( $cand[1], 5 );
    seg( $cand[2] + 1, 400, 'one key after a key the picker tries ' );
    seg( $cand[3] + 255, 500, 'far after a key the picker tries ' );
  } );
  my $now = snapshot();
  $seeded_by{$_} = "for $file (pid $pid)" for grep { !$before->{$_} } keys %$now;
}
my $seeded = snapshot();
note scalar( keys %$seeded ) . ' foreign objects seeded';

# --- the suite ---------------------------------------------------------------------

# (pid 1 in every namespace: a name of its own, for runs side by side)
my ( undef, $log ) = File::Temp::tempfile( 'foreign.XXXXXX', TMPDIR => 1, UNLINK => 1 );
my %lost;    # reported already
for my $i ( 0 .. $#files ) {
  my ( $file, $pid ) = ( $files[$i], $pids[$i] );
  local $ENV{SLTEST_KEY_SEED} = "foreign$i";
  my $got = fork_as( $pid );
  if ( !$got ) {
    open STDOUT, '>', $log or POSIX::_exit( 97 );
    open STDERR, '>&', \*STDOUT or POSIX::_exit( 97 );
    exec( $^X, '-Iblib/lib', '-Iblib/arch', $file ) or POSIX::_exit( 98 );
  }
  waitpid( $got, 0 );
  my $st  = $?;
  my $out = do { local ( @ARGV, $/ ) = ( $log ); <> } // '';
  is( $got, $pid, "$file ran as pid $pid" );
  ok( $st == 0 && $out =~ /^1\.\.\d+/m, "$file passes with the foreign objects there" ) or diag "wait status $st:\n$out";
  my $now = snapshot();
  my @lost = grep { !$lost{$_} && ( $now->{$_} // 'gone' ) ne $seeded->{$_} } sort keys %$seeded;
  $lost{$_} = 1 for @lost;
  is_deeply( [ map { "$_ ($seeded_by{$_}): " . ( $now->{$_} // 'gone' ) } @lost ], [], "$file: every foreign object still there, byte for byte" )
    or diag join "\n", map { "was: $_ $seeded->{$_}" } @lost;
}
unlink $log;

my $end = snapshot();
is_deeply( [ sort grep { !$seeded->{$_} } keys %$end ], [], 'the suite left nothing of its own behind' )
  or diag join "\n", map { "$_ $end->{$_}" } sort grep { !$seeded->{$_} } keys %$end;
is( scalar( grep { ( $end->{$_} // '' ) eq $seeded->{$_} } keys %$seeded ), scalar( keys %$seeded ), 'all ' . keys( %$seeded ) . ' foreign objects intact at the end' );

done_testing;
