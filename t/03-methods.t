# Covers: store/fetch of '', one byte, binary data with NULs, exactly one
# segment's data, one byte more, 1 MB; shrinking and growing chains (removed
# segments are gone); version numbers; lock/unlock return values with a second
# handle and with a child process holding the lock; invalid lock flags (undef,
# EINVAL); lock with a timeout; lock(LOCK_UN) followed by lock() really locking;
# no warning from lock() without arguments; utf8-flagged and wide-character
# values; store(undef); destroy get/set; remove(); DESTROY in a forked child
# (and a thread) not removing the share; shlock/shunlock.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT new_or_diag shm_gone);
use Test::More;
use POSIX ();
use Errno qw( EINVAL );
use Time::HiRes qw( time sleep );
use IPC::SysV qw( GETVAL );
use IPC::ShareLite qw( :all );

my $ORIG = impl_under_test() eq 'orig';

$SIG{ALRM} = 'DEFAULT';    # a hang kills the test instead of blocking the run
alarm 120;

# lock($flags) with the inherited handle $h in a forked child.
# 1: got it, 2: would block (0), 3: undef, 4: croaked.
sub child_try {
  my ( $h, $flags ) = @_;
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    alarm 10;
    my $r = eval { $h->lock( $flags ) };
    POSIX::_exit( $@ ? 4 : !defined $r ? 3 : $r ? 1 : 2 );
  }
  return wait_child( $pid );
}

# A forked child takes lock($flags) with the inherited handle $h and holds it
# until release() (or for $hold_for seconds).
sub hold_in_child {
  my ( $h, $flags, $hold_for ) = @_;
  pipe( my $ready_r, my $ready_w ) or die "pipe: $!";
  pipe( my $go_r,    my $go_w )    or die "pipe: $!";
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    close $ready_r;
    close $go_w;
    alarm 30;
    my $r = eval { $h->lock( $flags ) };
    syswrite $ready_w, ( defined $r ? $r : 'undef' ) . "\n";
    if ( defined $hold_for ) { sleep $hold_for }
    else                     { my $x = <$go_r> }
    POSIX::_exit( 0 );
  }
  close $ready_w;
  close $go_r;
  my $got = <$ready_r>;
  chomp $got if defined $got;
  return { pid => $pid, go => $go_w, got => $got };
}

sub release {
  my $c = shift;
  close $c->{go};
  return wait_child( $c->{pid} );
}

# --- store / fetch ------------------------------------------------------------
{
  my $k = new_key( 8 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => 1000 );
  my $data = 1000 - 16;
  is( $s->size,         1000, 'segment size 1000' );
  is( $s->fetch,        '',   'a new share holds the empty string' );
  is( $s->num_segments, 1,    'a new share has one segment' );
  my $v = $s->version;
  is( $v, 1, 'version 1' );

  my @cases = (
    [ 'empty string',               '',                                  1 ],
    [ 'one byte',                   'a',                                 1 ],
    [ 'one NUL byte',               "\0",                                1 ],
    [ 'binary with NULs',           join( '', map { chr( $_ % 256 ) } 0 .. 700 ) . "\0\0", 1 ],
    [ 'exactly one segment of data', 'D' x $data,                        1 ],
    [ 'one byte more',              'E' x ( $data + 1 ),                 2 ],
    [ 'exactly two segments',       'F' x ( 2 * $data ),                 2 ],
    [ 'two segments and a byte',    "\0" x ( 2 * $data ) . "\xff",       3 ],
    [ 'empty again',                '',                                  1 ],
  );
  for my $c ( @cases ) {
    my ( $desc, $value, $segs ) = @$c;
    is( $s->store( $value ), 1, "$desc: store returns 1" );
    is( $s->version, ++$v, "$desc: version bumped to $v" );
    my $got = $s->fetch;
    ok( $got eq $value, "$desc: fetch returns the " . length( $value ) . ' bytes' )
     or diag( 'got ' . length( $got ) . ' bytes' );
    ok( !utf8::is_utf8( $got ), "$desc: fetched value has no utf8 flag" );
    is( $s->num_segments, $segs, "$desc: $segs segment(s)" );
    is( scalar( () = chain_shmids( $k ) ), $segs, "$desc: chain of $segs in the kernel" );
    is( $s->version, $v, "$desc: fetch and num_segments do not bump the version" );
  }

  $s->lock;
  $s->unlock;
  $s->lock( LOCK_SH );
  $s->unlock;
  is( $s->version, $v, 'locking does not bump the version' );

  is( $s->store( 12345 ), 1, 'store a number' );
  is( $s->fetch, '12345', 'fetch returns its string' );
  $v++;

  {
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    $s->store( 'before' );
    is( $s->store( undef ), 1, 'store(undef) returns 1' );
    is( $s->fetch, '', 'store(undef) stores the empty string' );
    $v += 2;
  }
  is( $s->version, $v, 'versions still counted' );

  # a second handle sees every store
  my $t = new_or_diag( -key => $k, -size => 1000 );
  $s->store( 'seen by t' );
  is( $t->fetch,   'seen by t', 'a second handle sees the value' );
  is( $t->version, $s->version, 'and the same version' );
  $t->store( 'Z' x 3000 );
  is( $s->fetch, 'Z' x 3000, 'and the other way round, multi-segment' );
}

# --- large values -------------------------------------------------------------
{
  my $k = new_key( 32 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  my $big = join '', map { pack 'N', int rand 2**32 } 1 .. 262144;    # 1 MB of noise
  is( length $big, 1048576, '1 MB value' );
  is( $s->store( $big ), 1, 'store 1 MB' );
  ok( $s->fetch eq $big, 'fetch returns the 1 MB' );
  is( $s->num_segments, 17, '1 MB in 65520-byte chunks takes 17 segments' );
  my @ids = chain_shmids( $k );
  is( scalar @ids, 17, '17 segments in the kernel' );
  is( $s->store( 'small' ), 1, 'store a small value' );
  is( $s->num_segments, 1, 'back to 1 segment' );
  ok( !( grep { !shm_gone( $_ ) } @ids[ 1 .. $#ids ] ), 'the 16 surplus segments are removed' );
  ok( !shm_gone( $ids[0] ), 'the head stays' );
  is( $s->fetch, 'small', 'value' );
}

# --- shrinking and growing ----------------------------------------------------
{
  my $k = new_key( 16 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => 1000 );
  my $t = new_or_diag( -key => $k, -size => 1000 );
  $s->store( 'a' x 5000 );
  is( $s->num_segments, 6, '5000 bytes: 6 segments' );
  is( $t->fetch, 'a' x 5000, 'other handle reads 5000 bytes' );
  my @ids = chain_shmids( $k );
  is( scalar @ids, 6, '6 in the kernel' );

  $s->store( 'b' x 2000 );
  is( $s->num_segments, 3, '2000 bytes: 3 segments' );
  is( $t->num_segments, 3, 'other handle counts 3' );
  is( $t->fetch, 'b' x 2000, 'other handle reads the shorter value' );
  my @ids2 = chain_shmids( $k );
  is_deeply( \@ids2, [ @ids[ 0 .. 2 ] ], 'the first 3 segments are kept' );
  ok( !( grep { !shm_gone( $_ ) } @ids[ 3 .. 5 ] ), 'the removed segments are gone from the kernel' );

  $t->store( 'c' x 100 );
  is( $s->num_segments, 1, 'shrunk by the other handle: 1 segment' );
  is( $s->fetch, 'c' x 100, 'first handle reads it' );
  ok( !( grep { !shm_gone( $_ ) } @ids[ 1 .. 2 ] ), 'removed segments gone' );

  $s->store( 'd' x 4000 );
  is( $t->fetch, 'd' x 4000, 'grown again: the other handle reads 4000 bytes' );
  is( $t->num_segments, 5, '5 segments' );
  $t->store( 'e' x 2500 );
  is( $s->fetch, 'e' x 2500, 'shrunk by the other handle, read by the first' );
  $s->store( 'f' x 4500 );
  is( $t->fetch, 'f' x 4500, 'and grown by the first, read by the other' );
  is( scalar( () = chain_shmids( $k ) ), 5, 'kernel chain of 5' );
}

# --- lock / unlock ------------------------------------------------------------
{
  my $k = new_key( 4 );
  my $a = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  my $b = new_or_diag( -key => $k );

  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'no lock held at first' );
  is( $a->lock, 1, 'lock() returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'an exclusive lock is held' );
  is( $a->lock, 1, 'lock() again returns 1 at once' );
  is( $a->lock( LOCK_EX ), 1, 'lock(LOCK_EX) while held returns 1' );
  is( $b->lock( LOCK_EX | LOCK_NB ), 0, 'second handle: LOCK_EX|LOCK_NB gives 0' );
  is( $b->lock( LOCK_SH | LOCK_NB ), 0, 'second handle: LOCK_SH|LOCK_NB gives 0' );
  is( child_try( $b, LOCK_EX | LOCK_NB ), 2, 'child: LOCK_EX|LOCK_NB gives 0' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'failed attempts changed nothing' );
  is( $a->unlock, 1, 'unlock returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );
  is( $a->unlock, 1, 'unlock without a lock returns 1' );
  is( $b->unlock, 1, 'unlock of a handle that never locked returns 1' );

  is( $a->lock( LOCK_SH ), 1, 'lock(LOCK_SH) returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 1, 0 ], 'one reader' );
  is( $b->lock( LOCK_SH | LOCK_NB ), 1, 'second reader: LOCK_SH|LOCK_NB gives 1' );
  is_deeply( [ sem_counts( $k ) ], [ 2, 0 ], 'two readers' );
  is( $b->unlock, 1, 'second reader unlocks' );
  is( $b->lock( LOCK_EX | LOCK_NB ), 0, 'LOCK_EX|LOCK_NB against a reader gives 0' );
  is( child_try( $b, LOCK_EX | LOCK_NB ), 2, 'child: LOCK_EX|LOCK_NB against a reader gives 0' );
  is( child_try( $b, LOCK_SH | LOCK_NB ), 1, 'child: LOCK_SH|LOCK_NB with a reader gives 1' );
  is( $a->unlock, 1, 'reader unlocks' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );
  is( $b->lock( LOCK_EX | LOCK_NB ), 1, 'LOCK_EX|LOCK_NB on a free share gives 1' );
  is( $b->unlock, 1, 'unlock' );

  # conversions
  $a->lock( LOCK_EX );
  is( $a->lock( LOCK_SH ), 1, 'EX -> SH returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 1, 0 ], 'EX -> SH converts' );
  is( $a->lock( LOCK_EX ), 1, 'SH -> EX returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'SH -> EX converts' );
  is( $a->unlock, 1, 'unlock' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );

  # a child holds the lock
  my $c = hold_in_child( $b, LOCK_EX );
  is( $c->{got}, 1, 'child takes LOCK_EX' );
  is( $a->lock( LOCK_EX | LOCK_NB ), 0, 'LOCK_EX|LOCK_NB while a child holds EX gives 0' );
  is( $a->lock( LOCK_SH | LOCK_NB ), 0, 'LOCK_SH|LOCK_NB while a child holds EX gives 0' );
  is( release( $c ), 0, 'child done' );
  is( $a->lock( LOCK_EX | LOCK_NB ), 1, 'LOCK_EX|LOCK_NB after the child exited gives 1' );
  $a->unlock;

  $c = hold_in_child( $b, LOCK_SH );
  is( $c->{got}, 1, 'child takes LOCK_SH' );
  is( $a->lock( LOCK_SH | LOCK_NB ), 1, 'LOCK_SH|LOCK_NB while a child holds SH gives 1' );
  $a->unlock;
  is( $a->lock( LOCK_EX | LOCK_NB ), 0, 'LOCK_EX|LOCK_NB while a child holds SH gives 0' );
  release( $c );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'all released' );

  # invalid flags
  for my $bad ( [ 'LOCK_EX|LOCK_SH', LOCK_EX | LOCK_SH ], [ 'LOCK_UN|LOCK_EX', LOCK_UN | LOCK_EX ],
    [ 'LOCK_UN|LOCK_SH', LOCK_UN | LOCK_SH ], [ 'LOCK_EX|LOCK_SH|LOCK_NB', LOCK_EX | LOCK_SH | LOCK_NB ] )
  {
    my ( $name, $flags ) = @$bad;
    $! = 0;
    my $r = $a->lock( $flags );
    my $errno = $! + 0;
    is( $r, undef, "lock($name) returns undef" );
    {
      local $TODO = $ORIG ? '0.17 does not set $!' : undef;
      is( $errno, EINVAL, "lock($name) sets \$! to EINVAL" );
    }
    is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], "lock($name) takes no lock" );
  }

  # LOCK_NB alone
  {
    local $TODO = $ORIG ? '0.17 takes no lock for LOCK_NB alone' : undef;
    is( $a->lock( LOCK_NB ), 1, 'lock(LOCK_NB) returns 1' );
    is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'lock(LOCK_NB) means LOCK_EX|LOCK_NB' );
    $a->unlock;
    $c = hold_in_child( $b, LOCK_EX );
    is( $a->lock( LOCK_NB ), 0, 'lock(LOCK_NB) gives 0 while a child holds EX' );
    release( $c );
  }

  # lock() after unlock()
  $a->lock;
  $a->unlock;
  is( $a->lock, 1, 'lock() after unlock()' );
  is( child_try( $b, LOCK_EX | LOCK_NB ), 2, "... really locks: a child's LOCK_EX|LOCK_NB gets 0" );
  $a->unlock;

  # no warnings from lock() without arguments
  {
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    $a->lock;
    $a->unlock;
    $a->shlock;
    $a->shunlock;
    local $TODO = $ORIG ? '0.17 warns about an uninitialized value' : undef;
    is( scalar @w, 0, 'lock() without arguments warns nothing' ) or diag @w;
  }

  # shlock / shunlock
  is( $a->shlock, 1, 'shlock() returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'shlock() takes an exclusive lock' );
  is( $b->lock( LOCK_EX | LOCK_NB ), 0, '... others wait' );
  is( $a->shunlock, 1, 'shunlock() returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'shunlock() releases' );
  is( $a->shlock( LOCK_SH ), 1, 'shlock(LOCK_SH) returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 1, 0 ], 'shlock(LOCK_SH) takes a shared lock' );
  is( $b->shlock( LOCK_EX | LOCK_NB ), 0, 'shlock(LOCK_EX|LOCK_NB) gives 0 against a reader' );
  $a->shunlock;
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );

  # store and fetch while holding locks
  $a->lock( LOCK_SH );
  $a->store( 'stored under SH' );
  is_deeply( [ sem_counts( $k ) ], [ 1, 0 ], 'store under a shared lock gives the shared lock back' );
  is( $a->fetch, 'stored under SH', 'fetch under a shared lock' );
  $a->unlock;
  $a->lock( LOCK_EX );
  $a->store( 'stored under EX' );
  is( $a->fetch, 'stored under EX', 'store and fetch under an exclusive lock' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'the exclusive lock is kept' );
  $a->unlock;
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );
}

# --- lock(LOCK_UN), then lock() locks again ------------------------------------------
# (own handles: 0.17's defect leaves a handle's lock state wrong afterwards)
{
  my $k = new_key( 4 );
  my $a = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  my $b = new_or_diag( -key => $k );
  local $TODO = $ORIG ? '0.17 does not lock again after lock(LOCK_UN)' : undef;
  $a->lock;
  is( $a->lock( LOCK_UN ), 1, 'lock(LOCK_UN) returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'lock(LOCK_UN) releases' );
  is( $a->lock, 1, 'lock() after lock(LOCK_UN) returns 1' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'lock() after lock(LOCK_UN) takes the lock' );
  is( child_try( $b, LOCK_EX | LOCK_NB ), 2, "... a child's LOCK_EX|LOCK_NB gets 0" );
  $a->unlock;
  $a->lock( LOCK_SH );
  $a->lock( LOCK_UN );
  is( $a->lock( LOCK_SH ), 1, 'lock(LOCK_SH) after SH and LOCK_UN' );
  is_deeply( [ sem_counts( $k ) ], [ 1, 0 ], '... really takes the shared lock' );
  $a->unlock;
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'released' );

}

# --- lock with a timeout ------------------------------------------------------
SKIP: {
  skip '0.17 has no lock timeout (it would block for ever)', 14 if $ORIG;
  my $k = new_key( 4 );
  my $a = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  my $b = new_or_diag( -key => $k );

  my $t0 = time;
  is( $a->lock( LOCK_EX, 0.3 ), 1, 'lock(LOCK_EX, 0.3) on a free share gives 1' );
  $a->unlock;

  my $c = hold_in_child( $b, LOCK_EX );
  is( $c->{got}, 1, 'child holds LOCK_EX' );
  $t0 = time;
  my $r = $a->lock( LOCK_EX, 0.3 );
  my $dt = time - $t0;
  is( $r, 0, 'lock(LOCK_EX, 0.3) while a child holds EX gives 0' );
  cmp_ok( $dt, '>=', 0.2, '... not before 0.2 s' ) or diag "after $dt s";
  $t0 = time;
  $r  = $a->lock( LOCK_SH, 0.3 );
  $dt = time - $t0;
  is( $r, 0, 'lock(LOCK_SH, 0.3) while a child holds EX gives 0' );
  cmp_ok( $dt, '>=', 0.2, '... not before 0.2 s' ) or diag "after $dt s";
  $t0 = time;
  $r  = $a->lock( LOCK_EX, 1 );
  $dt = time - $t0;
  is( $r, 0, 'lock(LOCK_EX, 1) gives 0' );
  cmp_ok( $dt, '>=', 0.2, '... not before 0.2 s' ) or diag "after $dt s";
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], 'the timed-out calls took nothing' );
  release( $c );

  $c = hold_in_child( $b, LOCK_SH );
  is( $a->lock( LOCK_EX, 0.3 ), 0, 'lock(LOCK_EX, 0.3) while a child holds SH gives 0' );
  is( $a->lock( LOCK_SH, 0.3 ), 1, 'lock(LOCK_SH, 0.3) while a child holds SH gives 1' );
  $a->unlock;
  release( $c );

  # the holder lets go within the timeout
  $c = hold_in_child( $b, LOCK_EX, 0.3 );
  $t0 = time;
  is( $a->lock( LOCK_EX, 10 ), 1, 'lock(LOCK_EX, 10) gets the lock when the holder lets go' );
  cmp_ok( time - $t0, '<', 9, '... before the timeout' );
  $a->unlock;
  wait_child( $c->{pid} );
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], 'all released' );
}

# --- utf8 and wide characters ---------------------------------------------------
{
  my $k = new_key( 4 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  my $latin = "caf\xe9 \xff\x00\x80";
  my $up    = $latin;
  utf8::upgrade( $up );
  ok( utf8::is_utf8( $up ), 'upgraded string has the utf8 flag' );
  {
    local $TODO = $ORIG ? '0.17 stores the utf8 encoding, cut to the character count' : undef;
    ok( eval { $s->store( $up ) }, 'store of a utf8-flagged downgradable string' ) or diag $@;
    my $got = $s->fetch;
    is( length $got, length $latin, '... fetch gives one byte per character' );
    ok( $got eq $latin, '... the Latin-1 bytes' );
    ok( !utf8::is_utf8( $got ), '... without the utf8 flag' );
  }
  ok( utf8::is_utf8( $up ) && $up eq $latin, 'store leaves the caller\'s string as it was' );

  $s->store( 'old value' );
  my $v = $s->version;
  my $r = eval { $s->store( "wide \x{263a} char" ) };
  my $err = $@;
  {
    local $TODO = $ORIG ? '0.17 stores the utf8 encoding, cut to the character count' : undef;
    ok( !defined $r, 'store of a wide character croaks' );
    like( $err, qr/^IPC::ShareLite store\(\) error: Wide character/, '... IPC::ShareLite store() error: Wide character' );
    is( $s->fetch,   'old value', '... the old value is intact' );
    is( $s->version, $v,          '... the version is unchanged' );
  }
  is_deeply( [ sem_counts( $k ) ], [ 0, 0 ], '... and no lock is held' );
}

# --- destroy accessor -------------------------------------------------------------
{
  my $k = new_key( 4 );
  my $s = new_or_diag( -key => $k, -create => 'yes' );
  is( $s->destroy,      0, 'destroy defaults to 0' );
  is( $s->destroy( 1 ), 1, 'destroy(1) returns 1' );
  is( $s->destroy,      1, 'destroy is now 1' );
  is( $s->destroy( 0 ), 0, 'destroy(0) returns 0' );
  is( $s->destroy,      0, 'destroy is now 0' );
  undef $s;
  ok( defined semget( $k, 0, 0 ), 'destroy 0: share kept' );
  my $t = new_or_diag( -key => $k );
  is( $t->destroy( 1 ), 1, 'destroy(1) on an opener' );
  undef $t;
  ok( !defined semget( $k, 0, 0 ), 'destroy set later: share removed' );
  ok( !defined shmget( $k, 0, 0 ), '... head segment too' );
}

# --- remove() -----------------------------------------------------------------
SKIP: {
  skip 'remove() is new in 0.18', 12 if $ORIG;
  my $k = new_key( 8 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -size => 1000 );
  $s->store( 'r' x 3000 );
  my @ids = chain_shmids( $k );
  is( scalar @ids, 4, '4 segments before remove' );
  ok( eval { $s->remove; 1 }, 'remove() with destroy off' ) or diag $@;
  ok( !defined semget( $k, 0, 0 ), 'the semaphore set is gone' );
  ok( !( grep { !shm_gone( $_ ) } @ids ), 'every segment is gone' );
  ok( !eval { $s->fetch; 1 }, 'fetch after remove croaks' );
  ok( !eval { $s->store( 'x' ); 1 }, 'store after remove croaks' );
  ok( !defined $s->lock && $! == Errno::EIDRM(), 'lock after remove fails with EIDRM' );
  ok( !defined semget( $k, 0, 0 ), 'nothing came back' );
  {
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    my $ok = eval { undef $s; 1 };
    ok( $ok, 'DESTROY after remove does not die' );
    is( scalar @w, 0, '... nor warn' ) or diag @w;
  }

  my $k2 = new_key( 4 );
  my $t = new_or_diag( -key => $k2, -create => 'yes', -destroy => 'yes' );
  ok( eval { $t->remove; 1 }, 'remove() with destroy on' ) or diag $@;
  ok( !defined semget( $k2, 0, 0 ) && !defined shmget( $k2, 0, 0 ), 'share gone' );
  undef $t;
}

# --- DESTROY in a forked child or a thread ---------------------------------------------
SKIP: {
  skip "0.17 removes the share in the child's DESTROY", 8 if $ORIG;
  my $k = new_key( 8 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => 1000 );
  $s->store( 'k' x 2000 );

  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    alarm 10;
    my $ok = eval { $s->fetch eq 'k' x 2000 };
    undef $s;
    POSIX::_exit( $ok ? 0 : 1 );
  }
  is( wait_child( $pid ), 0, 'child read the share and dropped its copy' );
  ok( defined semget( $k, 0, 0 ), "the child's DESTROY did not remove the semaphore set" );
  is( eval { $s->fetch }, 'k' x 2000, 'the parent still reads the share' );

  $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    alarm 10;
    exit 0;    # global destruction
  }
  is( wait_child( $pid ), 0, 'child exited normally' );
  ok( defined semget( $k, 0, 0 ), "the child's global destruction did not remove the share" );
  ok( eval { $s->store( 'after children' ) }, 'the parent still stores' ) or diag $@;

  SKIP: {
    require Config;
    skip 'no ithreads', 2 unless $Config::Config{useithreads};
    require threads;
    my $thr = threads->create( sub { my $x = eval { $s->fetch }; return defined $x ? $x : 'undef' } );
    my $in_thread = $thr->join;
    ok( defined semget( $k, 0, 0 ), "a thread's copy did not remove the share" );
    is( eval { $s->fetch }, 'after children', 'the parent still reads the share' );
    note( "fetch in the thread gave '$in_thread'" );
  }
  undef $s;
  ok( !defined semget( $k, 0, 0 ), 'the creating process removes it' );
}

alarm 0;
no_leaks_ok();
done_testing;
