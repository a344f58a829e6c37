# Fork and ithreads semantics in depth (ShareLite.pm "FORK AND THREADS"):
#  - threads using one (cloned) object concurrently with locks: 2 threads x
#    200 locked increments give exactly 400; threads with objects of their own;
#    threads and processes of both implementations together (exact total);
#  - CLONE gives each thread a working handle of its own: a lock taken by a
#    thread is the thread's (the main thread's LOCK_NB fails), an object that
#    goes away in a thread (thread end) releases that thread's lock, nested
#    threads work, the version is shared;
#  - only the creating thread removes: objects cloned into threads never
#    remove the share; an object created in a thread is removed when that
#    thread's object goes away; remove() in a thread removes on purpose and the
#    other handles then croak (no hang, no warning);
#  - fork: a child with destroy on never removes the share, however it ends
#    (exit, die, _exit after undef, destroy(1) set in the child, grandchild);
#    a child's own object with destroy on is removed at its exit; an explicit
#    remove() in a child removes it, and the parent then croaks cleanly.
# A watchdog kills the file if anything hangs.

use lib 't/lib';
use SLTest;
use strict;
use warnings;
use Config;
BEGIN {
  unless ( $Config{useithreads} ) { print "1..0 # SKIP perl without ithreads\n"; exit 0 }
}
use threads;
use Thread::Queue;
use Test::More;
use IPC::ShareLite qw(:all);
use POSIX ();
use Time::HiRes qw(time sleep);

my $MAIN  = $$;
watchdog( 240 );    # whatever happens, this file ends within 240 s

sub share_exists { my $k = shift; defined( semget( $k, 0, 0 ) ) && defined( shmget( $k, 0, 0 ) ) ? 1 : 0 }
sub nothing_at   { my $k = shift; !defined( semget( $k, 0, 0 ) ) && !defined( shmget( $k, 0, 0 ) ) ? 1 : 0 }
sub new_share    { IPC::ShareLite->new( @_ ) }


# Fork; the child runs $code (which ends the child itself, or returns: then
# exit 0) with warnings sent back. Returns (exit status, warnings text).
sub fork_child {
  my $code = shift;
  pipe( my $r, my $w ) or die "pipe: $!";
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    close $r;
    alarm 30;
    $SIG{__WARN__} = sub { syswrite $w, $_[0] };
    $code->();
    exit 0;
  }
  close $w;
  my $text = do { local $/; <$r> };
  waitpid( $pid, 0 );
  return ( $?, $text // '' );
}

# Join a thread (a hung thread is caught by the watchdog).
sub join_all { map { $_->join } @_ }

# ---- threads: concurrent locked increments --------------------------------
{
  my $K = new_key( 4 );
  my $s = new_share( -key => $K, -create => 1, -destroy => 1 );
  $s->store( 0 );
  my $inc = sub {
    my $h = shift;
    my $bad = 0;
    for ( 1 .. 200 ) {
      $h->lock( LOCK_EX ) or $bad++;
      my $v = $h->fetch;
      threads->yield;
      $h->store( $v + 1 );
      $h->unlock or $bad++;
    }
    return $bad;
  };
  my @bad = join_all( map { threads->create( sub { $inc->( $s ) } ) } 1 .. 2 );
  is_deeply( \@bad, [ 0, 0 ], 'cloned object: every lock/unlock in the threads succeeded' );
  is( $s->fetch, 400, 'cloned object: 2 threads x 200 locked increments = 400' );

  $s->store( 0 );
  @bad = join_all( map {
    threads->create( sub { my $own = new_share( -key => $K ); $inc->( $own ) } )
  } 1 .. 2 );
  is_deeply( \@bad, [ 0, 0 ], "threads' own objects: every lock/unlock succeeded" );
  is( $s->fetch, 400, "threads' own objects: 2 x 200 locked increments = 400" );

  # two threads and two processes (ours and, when unpacked, 0.17) together
  $s->store( 0 );
  my @impls = ( 'ours', have_ref() ? 'orig' : 'ours' );
  my @kids = map {
    spawn_impl( $_, <<'EOC', $K );
alarm 60; my $s = IPC::ShareLite->new(-key => shift);
for (1 .. 200) { $s->lock(LOCK_EX) or die "lock"; my $v = $s->fetch; $s->store($v + 1); $s->unlock }
EOC
  } @impls;
  @bad = join_all( map { threads->create( sub { $inc->( $s ) } ) } 1 .. 2 );
  is( wait_child( $_ ), 0, 'incrementing child process succeeded' ) for @kids;
  is_deeply( \@bad, [ 0, 0 ], 'threads beside processes: every lock/unlock succeeded' );
  is( $s->fetch, 800, "2 threads + 2 processes (@impls) x 200 = 800" );
  is( share_exists( $K ), 1, 'share still exists after all those threads ended' );
  undef $s;
  is( nothing_at( $K ), 1, 'removed once the creating object goes away' );
}

# ---- CLONE: each thread has a handle of its own ---------------------------
{
  my $K = new_key( 4 );
  my $s = new_share( -key => $K, -create => 1, -destroy => 1 );
  $s->store( 'start' );
  my ( $to, $from ) = ( Thread::Queue->new, Thread::Queue->new );
  my $thr = threads->create( { context => "list" }, sub {
    my @r;
    push @r, $s->lock( LOCK_EX );
    $from->enqueue( 'locked' );
    $to->dequeue_timed( 20 );
    push @r, $s->unlock;
    $from->enqueue( 'unlocked' );
    $to->dequeue_timed( 20 );
    push @r, $s->fetch;
    $s->store( 'from thread' );
    push @r, $s->version;
    return @r;
  } );
  is( $from->dequeue_timed( 20 ), 'locked', 'thread took LOCK_EX through its clone' );
  is( $s->lock( LOCK_EX | LOCK_NB ), 0, "main thread's LOCK_EX|LOCK_NB = 0: the lock is the thread's" );
  is( $s->lock( LOCK_SH | LOCK_NB ), 0, "main thread's LOCK_SH|LOCK_NB = 0" );
  $to->enqueue( 'go' );
  is( $from->dequeue_timed( 20 ), 'unlocked', 'thread unlocked' );
  is( $s->lock( LOCK_EX | LOCK_NB ), 1, "main thread's LOCK_EX|LOCK_NB = 1 now" );
  $s->store( 'from main' );
  $s->unlock;
  $to->enqueue( 'go' );
  my ( $l, $u, $f, $ver ) = $thr->join;
  is_deeply( [ $l, $u ], [ 1, 1 ], "thread's lock and unlock returned 1" );
  is( $f, 'from main', "thread fetched the main thread's value" );
  is( $s->fetch, 'from thread', "main fetches the thread's value" );
  is( $s->version, $ver, 'both see the same version' );

  # an object that goes away in a thread (thread end) releases the thread's lock
  for my $type ( [ LOCK_EX, 'LOCK_EX' ], [ LOCK_SH, 'LOCK_SH' ] ) {
    my $r = threads->create( sub { $s->lock( $type->[0] ) } )->join;
    is( $r, 1, "thread took $type->[1] and ended without unlock" );
    is( timed( 5, sub { $s->lock( LOCK_EX | LOCK_NB ) } ), 1, "main thread gets LOCK_EX|LOCK_NB after the thread ended" );
    $s->unlock;
  }

  # nested threads
  my $n = threads->create( sub {
    my $inner = threads->create( sub { my $v = $s->fetch; $s->store( "$v+inner" ); $s->fetch } );
    my $iv = $inner->join;
    $s->store( "$iv+outer" );
    return $iv;
  } )->join;
  is( $n, 'from thread+inner', 'a thread started by a thread uses the object' );
  is( $s->fetch, 'from thread+inner+outer', 'main sees both' );
  is( share_exists( $K ), 1, 'share still there after nested threads ended' );

  # an object created in a thread belongs to that thread
  my $K2 = new_key( 4 );
  my @r = threads->create( { context => "list" }, sub {
    my $o = new_share( -key => $K2, -create => 1, -destroy => 1 );
    $o->store( 'in thread' );
    my $sub = threads->create( sub { $o->fetch } )->join;
    my $still = share_exists( $K2 );
    undef $o;
    return ( $sub, $still, nothing_at( $K2 ) );
  } )->join;
  is_deeply( \@r, [ 'in thread', 1, 1 ],
    "thread's own object: a sub-thread's clone does not remove it; the thread's undef does" );
  undef $s;
  is( nothing_at( $K ), 1, 'main object removes the share at the end' );
}

# ---- remove() in a thread -------------------------------------------------
{
  my $K = new_key( 4 );
  my $s = new_share( -key => $K, -create => 1, -destroy => 1 );
  $s->store( 'x' x 200_000 );
  my @w;
  local $SIG{__WARN__} = sub { push @w, @_ };
  my @r = threads->create( { context => "list" }, sub {
    my $rm = $s->remove;
    my $later = eval { $s->fetch; 1 } ? 'fetch worked' : 'croaked';
    return ( $rm, $later, nothing_at( $K ) );
  } )->join;
  is_deeply( \@r, [ 1, 'croaked', 1 ], 'remove() in a thread returns 1, removes the share, later calls croak' );
  is( nothing_at( $K ), 1, 'share gone for the main thread too' );
  my $st = eval { timed( 5, sub { $s->store( 'y' ) } ); 1 };
  ok( !$st && $@ !~ /timeout/, "main thread's store croaks (no hang)" ) or diag $@;
  my $ft = eval { timed( 5, sub { $s->fetch } ); 1 };
  ok( !$ft && $@ !~ /timeout/, "main thread's fetch croaks (no hang)" ) or diag $@;
  undef $s;
  is( scalar @w, 0, 'no warning, also when the main object goes away' ) or diag @w;
}

# ---- fork: a child never removes the parent's share -----------------------
{
  my $K = new_key( 4 );
  my $s = new_share( -key => $K, -create => 1, -destroy => 1 );
  $s->store( 'parent' );
  my %ends = (
    'exit'                      => sub { exit 0 },
    'die'                       => sub { open STDERR, '>', '/dev/null'; die "child dies\n" },
    'undef then _exit'          => sub { undef $s; POSIX::_exit( 0 ) },
    'destroy(1) set, then exit' => sub { $s->destroy( 1 ); exit 0 },
    'grandchild exits too'      => sub {
      my $g = fork;
      if ( defined $g && !$g ) { $s->store( 'grandchild' ); exit 0 }
      waitpid( $g, 0 ) if $g;
      exit( $? ? 1 : 0 );
    },
  );
  for my $how ( sort keys %ends ) {
    my ( $st, $warn ) = fork_child( sub {
      $s->lock( LOCK_EX ) or exit 2;
      my $v = $s->fetch;
      $s->store( "child $how" );
      $s->unlock;
      $ends{$how}->();
    } );
    if ( $how eq "die" ) { ok( $st >> 8, "child ($how) ended with a failure status" ) }
    else { is( $st >> 8, 0, "child ($how) ended with status 0" ) }
    is( $warn, '', "child ($how): no warning" );
    is( share_exists( $K ), 1, "share exists after the child ($how) ended" );
    my $v = eval { timed( 5, sub { $s->fetch } ) };
    is( $v, $how =~ /grandchild/ ? 'grandchild' : "child $how", "parent fetches the child's value ($how)" ) or diag $@;
    is( eval { timed( 5, sub { $s->lock( LOCK_EX | LOCK_NB ) } ) }, 1, "parent gets LOCK_EX|LOCK_NB ($how)" );
    $s->unlock;
  }
  ok( eval { $s->store( 'still mine' ); $s->fetch eq 'still mine' }, 'parent still stores and fetches' );

  # a child's own object with destroy on is removed at the child's exit
  my $K2 = new_key( 4 );
  my ( $st, $warn ) = fork_child( sub {
    my $o = new_share( -key => $K2, -create => 1, -destroy => 1 );
    $o->store( 'child' x 30_000 );
    exit 0;
  } );
  is( $st, 0, "child with its own object exited" );
  is( $warn, '', 'no warning' );
  is( nothing_at( $K2 ), 1, "child's own share removed at its exit" );

  # an explicit remove() in a child removes the share
  ( $st, $warn ) = fork_child( sub { $s->remove or exit 3; exit 0 } );
  is( $st, 0, 'child called remove() and exited' );
  is( $warn, '', 'no warning in the child' );
  is( nothing_at( $K ), 1, 'the share is gone' );
  my @w;
  local $SIG{__WARN__} = sub { push @w, @_ };
  ok( !eval { timed( 5, sub { $s->store( 'z' ) } ); 1 } && $@ !~ /timeout/, "parent's store croaks (no hang)" ) or diag $@;
  undef $s;
  is( scalar @w, 0, "no warning when the parent's object goes away" ) or diag @w;
}

no_leaks_ok();
done_testing;
