# Covers: what the sharelite command says when things are not as asked:
#  - put to a missing key says so and how to create it (put --create), before
#    reading anything, also from a terminal;
#  - put with standard input on a terminal (a pseudo-terminal made here)
#    says on stderr that it reads the value until end of file, then stores
#    what was typed up to Ctrl-D;
#  - get, rm and put on a key that holds something that is not a share (a
#    lone segment, a lone semaphore set of one semaphore) say "not a
#    ShareLite share", as stat does, and leave those objects alone.
# Keys come from SLTest's new_key; every object made here is removed.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT exists_share);
use Test::More;
use File::Temp ();
use IPC::SysV qw(IPC_CREAT IPC_EXCL IPC_RMID);
use POSIX ();
use Time::HiRes qw(sleep time);

plan skip_all => 'the command belongs to this distribution' if impl_under_test() eq 'orig';
watchdog( 120 );
chdir root_dir() or die "chdir: $!";

my $TMP = File::Temp::tempdir( 'slmsg.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
my $N   = 0;

# Start bin/sharelite with stdin from $in (a path), stdout and stderr to
# files; returns (pid, stdout file, stderr file).
sub start {
  my ( $args, $in ) = @_;
  my $n = $N++;
  my ( $out, $err ) = ( "$TMP/out.$n", "$TMP/err.$n" );
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    open STDIN,  '<', $in  or POSIX::_exit( 97 );
    open STDOUT, '>', $out or POSIX::_exit( 97 );
    open STDERR, '>', $err or POSIX::_exit( 97 );
    delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
    exec( $^X, '-Iblib/lib', '-Iblib/arch', 'bin/sharelite', @$args ) or POSIX::_exit( 98 );
  }
  return ( $pid, $out, $err );
}

sub slurp { my $f = shift; open my $fh, '<', $f or return ''; local $/; my $t = <$fh>; defined $t ? $t : '' }

# Run it to the end with $stdin as standard input: (exit code, stdout, stderr).
sub cli {
  my ( $args, $stdin ) = @_;
  my $in = "$TMP/in.$N";
  open my $fh, '>:raw', $in or die "$in: $!";
  print {$fh} defined $stdin ? $stdin : '';
  close $fh or die;
  my ( $pid, $out, $err ) = start( $args, $in );
  my $rc = wait_child( $pid );
  return ( $rc, slurp( $out ), slurp( $err ) );
}

sub khex { sprintf '0x%08x', $_[0] & 0xffffffff }

# ------------------------------------------------------------ put to a missing key

{
  my $k = new_key( 1 );
  my ( $rc, $out, $err ) = cli( [ 'put', $k ], 'value' );
  is( $rc, 1, 'put to a missing key: exit 1' );
  is( $err, 'sharelite: put ' . khex( $k ) . " ($k): no such share (put --create creates it)\n",
    '... says so, and how to create it' );
  ok( !exists_share( $k ), '... and creates nothing' );
  ( $rc, $out, $err ) = cli( [ 'get', $k ] );
  is( $err, 'sharelite: get ' . khex( $k ) . " ($k): no such share\n", 'get of a missing key: no hint' );
}

# ------------------------------------------------------------ put from a terminal

# A pseudo-terminal: (master handle, slave path), or () where none can be had
# (the ioctls are Linux's: unlock the slave, ask its number).
sub pty {
  open my $master, '+<', '/dev/ptmx' or return ();
  my $unlock = pack( 'i', 0 );
  ioctl( $master, 0x40045431, $unlock ) or return ();           # TIOCSPTLCK
  my $n = pack( 'I', 0 );
  ioctl( $master, 0x80045430, $n ) or return ();                # TIOCGPTN
  my $slave = '/dev/pts/' . unpack( 'I', $n );
  return -c $slave ? ( $master, $slave ) : ();
}

# Wait (at most 60 s: perl starts slowly under emulation) until $file holds
# something, or $pid has exited.
sub wait_for_text {
  my ( $file, $pid ) = @_;
  my $end = time + 60;
  sleep 0.02 until -s $file || time > $end || waitpid( $pid, POSIX::WNOHANG() ) == $pid;
  return slurp( $file );
}

# True when a process reading $slave sees a terminal (-t, isatty). Under
# qemu-user the terminal ioctls of some targets (s390x) are not translated,
# so a pseudo-terminal is not one for the program.
sub is_a_terminal {
  my $slave = shift;
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    open STDIN, '<', $slave or POSIX::_exit( 97 );
    POSIX::_exit( -t STDIN ? 0 : 1 );
  }
  return wait_child( $pid ) == 0;
}

SKIP: {
  my ( $master, $slave ) = pty();
  skip 'no pseudo-terminal here (/dev/ptmx)', 8 unless $master;
  skip 'a pseudo-terminal is no terminal to a program here (-t is false on it: qemu-user?)', 8
    unless is_a_terminal( $slave );

  # A missing share is reported at once, before anything is typed.
  my $k = new_key( 1 );
  my ( $pid, $out, $err ) = start( [ 'put', $k ], $slave );
  my $rc = timed( 15, sub { wait_child( $pid ) } );
  is( $rc, 1, 'put from a terminal to a missing key: exit 1 without waiting for input' );
  like( slurp( $err ), qr/\Asharelite: put \S+ \(\d+\): no such share \(put --create creates it\)\n\z/,
    '... no such share, put --create creates it' );

  # put --create from a terminal: the line on stderr comes first, then the
  # value typed up to Ctrl-D is stored.
  ( $pid, $out, $err ) = start( [ 'put', $k, '--create' ], $slave );
  my $said = wait_for_text( $err, $pid );
  is( $said, "sharelite: put: reading the value from standard input until end of file (Ctrl-D)\n",
    'put from a terminal says it reads standard input until end of file' );
  ok( !exists_share( $k ), '... while it waits, nothing is created yet' );
  syswrite( $master, "typed\n" );
  sleep 0.1;
  syswrite( $master, "\x04" );    # VEOF at the start of a line: end of file
  $rc = timed( 15, sub { wait_child( $pid ) } );
  is( $rc, 0, '... and after Ctrl-D it exits 0' );
  is( slurp( $err ), $said, '... having said nothing else' );
  ( $rc, $out ) = cli( [ 'get', $k ] );
  is( $out, "typed\n", '... storing what was typed' );

  ( $rc, $out, $err ) = cli( [ 'put', $k ], 'from a file' );
  is( $err, '', 'put with standard input from a file says nothing' );
  cli( [ 'rm', $k ] );
}

# ------------------------------------------------------------ keys that hold no share

{
  # A lone segment at one key, a lone semaphore set of one semaphore at another.
  my ( $ks, $km ) = ( new_key( 1 ), new_key( 1 ) );
  my $shmid = shmget( $ks, 4096, IPC_CREAT | IPC_EXCL | 0600 ) // die "shmget: $!";
  own_shm( $shmid );
  my $semid = semget( $km, 1, IPC_CREAT | IPC_EXCL | 0600 ) // die "semget: $!";
  own_sem( $semid );

  my %what = (
    $ks => 'not a ShareLite share (no semaphore set of 3, a shared memory segment)',
    $km => 'not a ShareLite share (a semaphore set, not of 3, no shared memory segment over 16 bytes)',
  );
  for my $k ( $ks, $km ) {
    for my $args ( [ 'stat', $k ], [ 'get', $k ], [ 'rm', $k ], [ 'put', $k ], [ 'put', $k, '--create' ] ) {
      my ( $rc, $out, $err ) = cli( $args, 'value' );
      is( $rc, 1, "@$args on a key with no share: exit 1" );
      is( $err, "sharelite: $args->[0] " . khex( $k ) . " ($k): $what{$k}\n", "... $what{$k}" );
    }
  }
  is( shmget( $ks, 0, 0 ), $shmid, 'the lone segment is left alone' );
  is( semget( $km, 0, 0 ), $semid, 'the lone semaphore set is left alone' );
  ok( !defined semget( $ks, 0, 0 ) && !defined shmget( $km, 0, 0 ), 'and nothing was added beside them' );
  shmctl( $shmid, IPC_RMID, 0 ) or die "shmctl: $!";
  semctl( $semid, 0, IPC_RMID, 0 ) or die "semctl: $!";
}

no_leaks_ok();
done_testing;
