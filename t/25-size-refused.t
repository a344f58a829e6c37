# Covers: when new() creates a share and the system refuses the segment, the
# croak still starts "Failed to create share: <strerror>" with $! set, and
# then names the size that was refused and the limit most likely in the way.
# In a private IPC namespace (this file re-runs itself under `unshare --ipc`,
# and skips where no namespace can be had) with low limits:
#  - kernel.shmmax: a -size above it is Invalid argument, naming shmmax and
#    its value;
#  - kernel.shmall: a -size beyond what is left is No space left on device
#    (Linux), naming shmall with its value in pages, and shmmni;
#  - kernel.shmmni: the default size refused when no segment is left, naming
#    shmmni with its value;
#  - a size no memory can hold: Cannot allocate memory, where the system
#    says so (not with vm.overcommit_memory=1);
# and where the size has nothing to do with it, nothing is added: a key
# holding a semaphore set of one semaphore (Invalid argument from semget),
# a missing share opened without -create. Each call leaves nothing behind.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Errno qw(EINVAL ENOSPC ENOMEM);
use IPC::SysV qw(IPC_CREAT IPC_EXCL IPC_RMID);

use SLPrivateIPC;
use SLTest;
use IPC::ShareLite;

plan skip_all => 'the size in the message is new in 0.18' if impl_under_test() eq 'orig';

my $ME = quotemeta __FILE__;

sub objects { SLPrivateIPC::objects() }

sub sysctl { SLPrivateIPC::sysctl( @_ ) }

# new() that must fail: ($@, $!) after it.
sub refused {
  my $s = eval { IPC::ShareLite->new( @_ ) };
  my ( $err, $errno ) = ( $@, $! + 0 );
  undef $s;
  return ( $err, $errno );
}

is_deeply( objects(), { shm => [], sem => [] }, 'the private namespace starts empty' );

SKIP: {
  my $old = sysctl( 'shmmax' );
  skip 'kernel.shmmax cannot be set here', 4 unless defined sysctl( 'shmmax', 1 << 20 );
  my ( $err, $errno ) = refused( -key => new_key( 1 ), -create => 1, -destroy => 1, -size => '2M' );
  like( $err, qr/^Failed to create share: Invalid argument \(-size 2M \(2097152 bytes\): more than the system allows one segment, its limit shmmax: 1048576 bytes here\) at $ME line/,
    'shmmax: Invalid argument, the size asked for and the limit' );
  is( $errno, EINVAL, 'shmmax: $! is EINVAL' );
  ( $err ) = refused( -key => new_key( 1 ), -create => 1, -destroy => 1, -size => 2 << 20 );
  like( $err, qr/^Failed to create share: Invalid argument \(-size 2097152: more than the system allows one segment, its limit shmmax: 1048576 bytes here\) at /,
    'shmmax: a size in bytes is named once' );
  is_deeply( objects(), { shm => [], sem => [] }, 'shmmax: nothing is left' );
  sysctl( 'shmmax', $old );
}

SKIP: {
  my $old = sysctl( 'shmall' );
  skip 'kernel.shmall cannot be set here', 3 unless defined sysctl( 'shmall', 16 );
  my ( $err, $errno ) = refused( -key => new_key( 1 ), -create => 1, -destroy => 1, -size => '1M' );
  like( $err, qr/^Failed to create share: No space left on device \(-size 1M \(1048576 bytes\): a limit of the system is reached, on shared memory in all \(shmall: 16 pages here\), on the number of segments \(shmmni: \d+ here\) or on the number of semaphore sets \(semmni\)\) at $ME line/,
    'shmall: No space left on device, the size and the limits' );
  is( $errno, ENOSPC, 'shmall: $! is ENOSPC' );
  is_deeply( objects(), { shm => [], sem => [] }, 'shmall: nothing is left' );
  sysctl( 'shmall', $old );
}

SKIP: {
  my $old = sysctl( 'shmmni' );
  skip 'kernel.shmmni cannot be set here', 4 unless defined sysctl( 'shmmni', 1 );
  my $one = IPC::ShareLite->new( -key => new_key( 1 ), -create => 1, -destroy => 1 ) or die "new: $!";
  my $before = objects();
  my ( $err, $errno ) = refused( -key => new_key( 1 ), -create => 1, -destroy => 1 );
  like( $err, qr/^Failed to create share: No space left on device \(the default size, 65536 bytes: a limit of the system is reached, .*\(shmmni: 1 here\)/,
    'shmmni: the default size, and the limit with its value' );
  is( $errno, ENOSPC, 'shmmni: $! is ENOSPC' );
  is_deeply( objects(), $before, 'shmmni: nothing is added' );
  undef $one;
  is_deeply( objects(), { shm => [], sem => [] }, 'shmmni: nothing is left' );
  sysctl( 'shmmni', $old );
}

SKIP: {
  my $over = do { open my $fh, '<', '/proc/sys/vm/overcommit_memory'; $fh ? <$fh> : '' };
  skip 'vm.overcommit_memory is 1: the system promises any size', 3 if $over =~ /^1/;
  my ( $err, $errno ) = refused( -key => new_key( 1 ), -create => 1, -destroy => 1, -size => 1 << 46 );
  skip "a 64 TiB segment is not refused for want of memory here ($err)", 3 unless $errno == ENOMEM;
  like( $err, qr/^Failed to create share: Cannot allocate memory \(-size 70368744177664: the system has no memory for it, or its limit on shared memory in all \(shmall: \d+ pages here\) is reached\) at $ME line/,
    'no memory: Cannot allocate memory, the size and shmall' );
  is( $errno, ENOMEM, 'no memory: $! is ENOMEM' );
  is_deeply( objects(), { shm => [], sem => [] }, 'no memory: nothing is left' );
}

# Where the size is not the reason, nothing is said of it.
{
  my $k = new_key( 1 );
  my $semid = semget( $k, 1, IPC_CREAT | IPC_EXCL | 0600 ) // die "semget: $!";
  my ( $err, $errno ) = refused( -key => $k, -create => 1, -destroy => 1, -size => 4096 );
  like( $err, qr/^Failed to create share: Invalid argument at $ME line/, 'a set of one semaphore at the key: Invalid argument, no word of the size' );
  is( $errno, EINVAL, '... $! is EINVAL' );
  semctl( $semid, 0, IPC_RMID, 0 ) or die "semctl: $!";
  ( $err, $errno ) = refused( -key => new_key( 1 ), -size => 4096 );
  like( $err, qr/^Failed to create share: No such file or directory at $ME line/, 'a missing share, not created: no word of the size' );
  is_deeply( objects(), { shm => [], sem => [] }, 'nothing is left' );
}

done_testing();
