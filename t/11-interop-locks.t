# Interop of locks between our IPC::ShareLite and the original 0.17, both
# directions (a holder of one implementation, the other side of the other):
# LOCK_EX held => other side's LOCK_EX|LOCK_NB and LOCK_SH|LOCK_NB return 0;
# LOCK_SH held => other side's LOCK_SH|LOCK_NB returns 1, LOCK_EX|LOCK_NB 0;
# after unlock the other side gets it; semaphore values as in doc/FORMAT.md
# (section 4); blocking lock(), fetch() and store() on one side wait for the
# other side's release (ordering checked with timestamps and with the values
# read); a holder killed with SIGKILL (holding LOCK_EX or LOCK_SH, or while
# the other side blocks) releases its lock through SEM_UNDO.
#
# Only children touch the share (t/lib/SLInterop.pm agents); this process
# coordinates, reads semaphore values and sends SIGKILL. Every wait is capped
# at 20 s. SHARELITE_INTEROP_SELFTEST=1 runs 0.17 on both sides (checks the
# test itself).

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use lib 't/lib';
use SLTest;
use SLInterop;

need_ref();

my $PAUSE = 0.5;    # how long a blocked call must stay blocked

# A fresh share: $Hi (holder) creates it, $Oi (other side) opens it.
sub setup {
  my ( $Hi, $Oi ) = @_;
  my $key = new_key( 4 );
  my $H   = agent( $Hi, "holder-$Hi" );
  my $O   = agent( $Oi, "other-$Oi" );
  $H->call( "\$S = open_share(key => $key, create => 1); \$S->store('v0'); 1" );
  $O->call( "\$S = open_share(key => $key); 1" );
  return ( $key, $H, $O );
}

# The last live agent removes the share; all exit; nothing left.
sub teardown {
  my ( $key, $remover, @others ) = @_;
  my @ids = chain_shmids( $key );
  for my $A ( @others ) {
    next if defined $A->{status};
    $A->call( 'undef $S; 1' );
    is( $A->finish, 0, $A->name . ' exits cleanly' );
  }
  $remover->call( '$S->destroy(1); undef $S; 1' );
  is( $remover->finish, 0, $remover->name . ' exits cleanly' );
  ok( share_gone( $key, @ids ), 'share removed' );
}

sub sems_are {
  my ( $key, $want, $name ) = @_;
  is_deeply( [ sem_values( $key ) ], $want, "semaphores (init, readers, writer) = (@$want): $name" );
}

sub ex_held {
  my ( $Hi, $Oi ) = @_;
  my ( $key, $H, $O ) = setup( $Hi, $Oi );
  is( $H->call( '$S->lock(LOCK_EX)' ), 1, "$Hi: lock(LOCK_EX) = 1" );
  sems_are( $key, [ 1, 0, 1 ], "$Hi holds LOCK_EX" );
  is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 0, "$Oi: lock(LOCK_EX|LOCK_NB) = 0 while $Hi holds LOCK_EX" );
  is( $O->call( '$S->lock(LOCK_SH|LOCK_NB)' ), 0, "$Oi: lock(LOCK_SH|LOCK_NB) = 0 while $Hi holds LOCK_EX" );
  sems_are( $key, [ 1, 0, 1 ], "failed attempts of $Oi changed nothing" );
  is( $H->call( '$S->unlock' ), 1, "$Hi: unlock = 1" );
  sems_are( $key, [ 1, 0, 0 ], "$Hi unlocked" );
  is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 1, "$Oi: lock(LOCK_EX|LOCK_NB) = 1 after $Hi unlocked" );
  sems_are( $key, [ 1, 0, 1 ], "$Oi holds LOCK_EX" );
  is( $H->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 0, "$Hi: lock(LOCK_EX|LOCK_NB) = 0 while $Oi holds LOCK_EX" );
  is( $H->call( '$S->lock(LOCK_SH|LOCK_NB)' ), 0, "$Hi: lock(LOCK_SH|LOCK_NB) = 0 while $Oi holds LOCK_EX" );
  is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
  is( $O->call( '$S->lock(LOCK_SH|LOCK_NB)' ), 1, "$Oi: lock(LOCK_SH|LOCK_NB) = 1 when free" );
  is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
  sems_are( $key, [ 1, 0, 0 ], 'all released' );
  teardown( $key, $O, $H );
}

sub sh_held {
  my ( $Hi, $Oi ) = @_;
  my ( $key, $H, $O ) = setup( $Hi, $Oi );
  is( $H->call( '$S->lock(LOCK_SH)' ), 1, "$Hi: lock(LOCK_SH) = 1" );
  sems_are( $key, [ 1, 1, 0 ], "$Hi holds LOCK_SH" );
  is( $O->call( '$S->lock(LOCK_SH|LOCK_NB)' ), 1, "$Oi: lock(LOCK_SH|LOCK_NB) = 1 while $Hi holds LOCK_SH" );
  sems_are( $key, [ 1, 2, 0 ], 'both hold LOCK_SH' );
  is( $O->call( '$S->fetch' ), 'v0', "$Oi fetches while both hold LOCK_SH" );
  is( $H->call( '$S->fetch' ), 'v0', "$Hi fetches while both hold LOCK_SH" );
  is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
  sems_are( $key, [ 1, 1, 0 ], "only $Hi holds LOCK_SH" );
  is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 0, "$Oi: lock(LOCK_EX|LOCK_NB) = 0 while $Hi holds LOCK_SH" );
  is( $O->call( '$S->fetch' ), 'v0', "$Oi fetches (own shared lock) while $Hi holds LOCK_SH" );
  sems_are( $key, [ 1, 1, 0 ], "$Oi\'s fetch released its shared lock" );
  is( $H->call( '$S->unlock' ), 1, "$Hi: unlock = 1" );
  sems_are( $key, [ 1, 0, 0 ], "$Hi unlocked" );
  is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 1, "$Oi: lock(LOCK_EX|LOCK_NB) = 1 after $Hi unlocked" );
  is( $H->call( '$S->lock(LOCK_SH|LOCK_NB)' ), 0, "$Hi: lock(LOCK_SH|LOCK_NB) = 0 while $Oi holds LOCK_EX" );
  is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
  sems_are( $key, [ 1, 0, 0 ], 'all released' );
  teardown( $key, $H, $O );
}

# $H takes $hold; $O starts $wait (blocking) which must not return until $H
# releases. $wait's snippet returns (result, time of return); $H records the
# time just before releasing, so the order is checked on the clock, not on
# tight timings.
sub blocks_until_release {
  my ( $Hi, $Oi, $hold, $wait, $what, $between ) = @_;
  my ( $key, $H, $O ) = setup( $Hi, $Oi );
  is( $H->call( "\$S->lock($hold)" ), 1, "$Hi holds $hold" );
  my $n = $O->send( "my \@r = ($wait); (\@r, sprintf('%.6f', time))" );
  sleep $PAUSE;
  ok( !$O->ready( $n ), "$Oi: $what is still blocked after ${PAUSE}s while $Hi holds $hold" );
  $between->( $H, $O, $n ) if $between;
  my $t_rel = $H->call( 'my $t = sprintf("%.6f", time); $S->unlock; $t' );
  my @r     = $O->result( $n );
  my $t_acq = pop @r;
  cmp_ok( $t_acq, '>=', $t_rel, "$Oi: $what returned after $Hi released" );
  return ( $key, $H, $O, @r );
}

sub blocking {
  my ( $Hi, $Oi ) = @_;
  for my $c (
    [ 'LOCK_EX', 'LOCK_EX' ],
    [ 'LOCK_EX', 'LOCK_SH' ],
    [ 'LOCK_SH', 'LOCK_EX' ],
   )
  {
    my ( $hold, $want ) = @$c;
    my ( $key, $H, $O, $r ) = blocks_until_release( $Hi, $Oi, $hold, "\$S->lock($want)", "lock($want)" );
    is( $r, 1, "$Oi: lock($want) = 1" );
    sems_are( $key, $want eq 'LOCK_EX' ? [ 1, 0, 1 ] : [ 1, 1, 0 ], "$Oi holds $want" );
    is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
    teardown( $key, $O, $H );
  }

  # fetch takes the shared lock: waits for the writer, then sees its last store
  {
    my $between = sub {
      my ( $H ) = @_;
      $H->call( q{$S->store('v2-stored-under-LOCK_EX'); 1} );
    };
    my ( $key, $H, $O, $v ) = blocks_until_release( $Hi, $Oi, 'LOCK_EX', '$S->fetch', 'fetch()', $between );
    is( $v, 'v2-stored-under-LOCK_EX', "$Oi: blocked fetch() returns the value $Hi stored before unlocking" );
    sems_are( $key, [ 1, 0, 0 ], "$Oi\'s fetch released its shared lock" );
    teardown( $key, $O, $H );
  }

  # store takes the exclusive lock: waits for the reader
  {
    my $between = sub {
      my ( $H ) = @_;
      is( $H->call( '$S->fetch' ), 'v0', "$Hi still reads the old value while $Oi\'s store waits" );
    };
    my ( $key, $H, $O, $r ) = blocks_until_release( $Hi, $Oi, 'LOCK_SH', q{$S->store('from-other-side')}, 'store()', $between );
    is( $r, 1, "$Oi: blocked store() = 1" );
    is( $H->call( '$S->fetch' ), 'from-other-side', "$Hi then fetches the value $Oi stored" );
    sems_are( $key, [ 1, 0, 0 ], "$Oi\'s store released its exclusive lock" );
    teardown( $key, $O, $H );
  }
}

sub killed_holder {
  my ( $Hi, $Oi ) = @_;
  for my $hold ( 'LOCK_EX', 'LOCK_SH' ) {
    my ( $key, $H, $O ) = setup( $Hi, $Oi );
    is( $H->call( "\$S->lock($hold)" ), 1, "$Hi holds $hold" );
    is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 0, "$Oi: lock(LOCK_EX|LOCK_NB) = 0 while $Hi holds $hold" );
    $H->kill9;
    sems_are( $key, [ 1, 0, 0 ], "SIGKILL of $Hi holding $hold released it (SEM_UNDO)" );
    is( $O->call( '$S->lock(LOCK_EX|LOCK_NB)' ), 1, "$Oi: lock(LOCK_EX|LOCK_NB) = 1 after $Hi was killed" );
    is( $O->call( q{$S->store('after-kill'); $S->unlock} ), 1, "$Oi stores and unlocks" );
    is( $O->call( '$S->fetch' ), 'after-kill', "$Oi fetches" );
    teardown( $key, $O );
  }

  # the other side is blocked in lock(LOCK_EX) when the holder dies
  for my $hold ( 'LOCK_EX', 'LOCK_SH' ) {
    my ( $key, $H, $O ) = setup( $Hi, $Oi );
    is( $H->call( "\$S->lock($hold)" ), 1, "$Hi holds $hold" );
    my $n = $O->send( '$S->lock(LOCK_EX)' );
    sleep $PAUSE;
    ok( !$O->ready( $n ), "$Oi: lock(LOCK_EX) blocks while $Hi holds $hold" );
    $H->kill9;
    is( scalar $O->result( $n ), 1, "$Oi: blocked lock(LOCK_EX) = 1 once $Hi was killed" );
    sems_are( $key, [ 1, 0, 1 ], "$Oi holds LOCK_EX" );
    is( $O->call( '$S->unlock' ), 1, "$Oi: unlock = 1" );
    teardown( $key, $O );
  }
}

for my $d ( directions() ) {
  my ( $A, $B ) = @$d;
  for my $s (
    [ \&ex_held,       "$A holds LOCK_EX, $B tries" ],
    [ \&sh_held,       "$A holds LOCK_SH, $B tries" ],
    [ \&blocking,      "$B blocks until $A releases" ],
    [ \&killed_holder, "$A killed while holding a lock, $B gets it" ],
   )
  {
    my ( $code, $name ) = @$s;
    subtest $name => sub {
      eval { $code->( $A, $B ); 1 } or fail( "scenario died: $@" );
    };
    reap_agents();
  }
}

no_leaks_ok();
done_testing;
