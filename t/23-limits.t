# Covers: a call that fails at a system limit leaves the system exactly as it
# found it. In a private IPC namespace (this file re-runs itself under
# `unshare --ipc`, skipping where no namespace can be had) with low limits:
#  - kernel.shmmni (segment count): a store that needs more segments than are
#    left croaks, and every segment it created is gone; the old value, the
#    chain and the lock are as before, and a later store works;
#  - kernel.shmall (pages in all segments): the same;
#  - kernel.shmmax (largest segment): new() with a larger -size croaks and
#    leaves no segment and no semaphore set;
#  - kernel.sem (semaphore sets): new() croaks and leaves no segment.
# Objects are compared as the full list of ids in the namespace (nothing else
# lives there), before and after each failed call.

use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();

use SLPrivateIPC;
use SLTest;
use IPC::ShareLite qw( :lock );

sub objects { SLPrivateIPC::objects() }

sub sysctl { SLPrivateIPC::sysctl( @_ ) }

# The namespace is new: nothing of anyone else is in it.
is_deeply( objects(), { shm => [], sem => [] }, 'the private namespace starts empty' );

my $SIZE = 4096;
my $DATA = $SIZE - 16;

sub failed_store_leaves_nothing {
  my ( $limit, $set_limit ) = @_;
  my $s = IPC::ShareLite->new( -key => 4242, -create => 1, -destroy => 1, -size => $SIZE )
   or die "new: $!";
  my $old = 'o' x ( 3 * $DATA );
  ok( $s->store( $old ), "$limit: a three-segment value fits" );
  $set_limit->();
  my $before = objects();
  my $big    = 'b' x ( 40 * $DATA );
  ok( !eval { $s->store( $big ); 1 }, "$limit: a store past the limit fails" );
  like( $@, qr/store\(\) error: /, "$limit: and croaks" );
  is_deeply( objects(), $before, "$limit: every segment the store created is gone" );
  is( $s->fetch, $old, "$limit: the old value is whole" );
  is( $s->num_segments, 3, "$limit: the chain is as it was" );
  is( $s->lock( LOCK_EX | LOCK_NB ), 1, "$limit: no lock is left held" );
  $s->unlock;
  ok( $s->store( 'small' ), "$limit: a later store works" );
  is( $s->num_segments, 1, "$limit: and trims the chain" );
  undef $s;
  is_deeply( objects(), { shm => [], sem => [] }, "$limit: removing the share leaves nothing" );
}

SKIP: {
  my $old = sysctl( 'shmmni' );
  skip 'kernel.shmmni cannot be set here', 10 unless defined sysctl( 'shmmni', $old );
  # Head and two chained segments exist, room for five more: far fewer than
  # the 40 the big value needs.
  failed_store_leaves_nothing( 'shmmni', sub { sysctl( 'shmmni', 8 ) } );
  sysctl( 'shmmni', $old );
}

SKIP: {
  my $old = sysctl( 'shmall' );
  skip 'kernel.shmall cannot be set here', 10 unless defined sysctl( 'shmall', $old );
  my $page = POSIX::sysconf( POSIX::_SC_PAGESIZE() ) || 4096;
  my $pages = int( ( $SIZE + $page - 1 ) / $page );
  # The three segments in use, plus room for ten more.
  failed_store_leaves_nothing( 'shmall', sub { sysctl( 'shmall', 13 * $pages ) } );
  sysctl( 'shmall', $old );
}

SKIP: {
  my $old = sysctl( 'shmmax' );
  skip 'kernel.shmmax cannot be set here', 3 unless defined sysctl( 'shmmax', 1 << 20 );
  my $s = eval { IPC::ShareLite->new( -key => 4343, -create => 1, -destroy => 1, -size => 2 << 20 ) };
  ok( !$s, 'shmmax: new() with a -size above the limit fails' );
  like( $@, qr/^Failed to create share: /, 'shmmax: and croaks' );
  is_deeply( objects(), { shm => [], sem => [] }, 'shmmax: no segment or semaphore set is left' );
  sysctl( 'shmmax', $old );
}

SKIP: {
  my $old = sysctl( 'sem' );
  my @f = split ' ', $old;
  skip 'kernel.sem cannot be set here', 4 unless defined sysctl( 'sem', join ' ', @f[0 .. 2], 1 );
  my $one = IPC::ShareLite->new( -key => 4444, -create => 1, -destroy => 1 ) or die "new: $!";
  my $before = objects();
  my $s = eval { IPC::ShareLite->new( -key => 4445, -create => 1, -destroy => 1 ) };
  ok( !$s, 'kernel.sem: new() past the semaphore set limit fails' );
  like( $@, qr/^Failed to create share: /, 'kernel.sem: and croaks' );
  is_deeply( objects(), $before, 'kernel.sem: no segment is left' );
  undef $one;
  is_deeply( objects(), { shm => [], sem => [] }, 'kernel.sem: removing the first share leaves nothing' );
  sysctl( 'sem', $old );
}

done_testing();
