# Covers: error paths lose nothing and leave no lock held. After each failed
# call (invalid lock flags, a wide-character store, a fetch on a header
# corrupted with shmwrite: length past the end of the chain, next_shmid
# pointing at itself, a two-segment cycle, a negative or huge length, a dangling
# next_shmid, a chained segment of another size; a share removed under the
# handle) the croak message is the documented one, no semaphore count is left
# raised, and another process can still take LOCK_EX|LOCK_NB. Every call on a
# corrupted share runs under alarm(5): a hang kills the test rather than the run.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT new_or_diag);
use Test::More;
use POSIX ();
use IPC::SysV qw( GETVAL IPC_PRIVATE IPC_CREAT IPC_RMID );
use IPC::ShareLite qw( :all );

my $ORIG = impl_under_test() eq 'orig';
my $IMPL = impl_under_test();
my $ME   = quotemeta $0;

$SIG{ALRM} = 'DEFAULT';

# Another process (of the implementation under test) opens the share and
# tries LOCK_EX|LOCK_NB; gives its output ('1' when it got the lock).
sub other_lock {
  my $key = shift;
  my ( $rc, $out ) = run_impl( $IMPL, <<'CODE', $key );
alarm 5;
my $s = IPC::ShareLite->new( -key => $ARGV[0], -size => 100 ) or die "open: $!";
my $r = $s->lock( LOCK_EX | LOCK_NB );
print defined $r ? $r : 'undef';
$s->unlock;
CODE
  return "exit $rc" if $rc;
  return $out;
}

# After a failed call: nothing held, and another process can lock.
sub nothing_held {
  my ( $key, $desc ) = @_;
  is_deeply( [ sem_counts( $key ) ], [ 0, 0 ], "$desc: no lock left held" );
  is( other_lock( $key ), '1', "$desc: another process takes LOCK_EX|LOCK_NB" );
}

sub my_segments {
  return scalar grep { defined $_->{cpid} ? $_->{cpid} == $$ : die "the listing shows no creator pids\n" } sysv_segments();
}

# Write next_shmid and length of the segment $id.
sub set_header {
  my ( $id, $next, $len ) = @_;
  shmwrite( $id, pack( 'ii', $next, $len ), 0, 8 ) or die "shmwrite: $!";
}

# Run $code under alarm(5); returns (result, error).
sub guarded {
  my ( $desc, $code ) = @_;
  note( "trying: $desc" );
  alarm 5;
  my $r   = eval { $code->() };
  my $err = $@;
  alarm 0;
  return ( $r, $err );
}

# --- invalid lock flags -------------------------------------------------------
{
  my $k = new_key( 2 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  $s->store( 'kept' );
  for my $bad ( [ 'LOCK_EX|LOCK_SH', LOCK_EX | LOCK_SH ], [ 'LOCK_UN|LOCK_EX', LOCK_UN | LOCK_EX ],
    [ 'LOCK_UN|LOCK_SH', LOCK_UN | LOCK_SH ], [ 'LOCK_SH|LOCK_EX|LOCK_NB', LOCK_SH | LOCK_EX | LOCK_NB ] )
  {
    my ( $name, $flags ) = @$bad;
    my $r = $s->lock( $flags );
    is( $r, undef, "lock($name) returns undef" );
    nothing_held( $k, "lock($name)" );
  }
  is( $s->fetch, 'kept', 'the value is intact' );
  is( $s->lock,  1,      'the handle still locks' );
  is_deeply( [ sem_counts( $k ) ], [ 0, 1 ], '... for real' );
  is( $s->unlock, 1, 'and unlocks' );
  nothing_held( $k, 'after unlock' );
}

# --- wide-character store -------------------------------------------------------
{
  my $k = new_key( 2 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes' );
  $s->store( 'old value' );
  for my $held ( undef, LOCK_EX, LOCK_SH ) {
    my $desc = 'wide-character store' . ( defined $held ? " holding " . ( $held == LOCK_EX ? 'EX' : 'SH' ) : '' );
    $s->lock( $held ) if defined $held;
    my $r = eval { $s->store( "\x{100}\x{263a}" ) };
    my $err = $@;
    {
      local $TODO = $ORIG ? '0.17 stores the utf8 encoding, cut to the character count' : undef;
      ok( !defined $r, "$desc croaks" );
      like( $err, qr/^IPC::ShareLite store\(\) error: Wide character in store at $ME line \d+/,
        "$desc: IPC::ShareLite store() error: Wide character in store, at the caller" );
      is( $s->fetch, 'old value', "$desc: the old value is intact" );
    }
    if ( defined $held ) {
      is_deeply( [ sem_counts( $k ) ], ( $held == LOCK_EX ? [ 0, 1 ] : [ 1, 0 ] ), "$desc: the caller's lock is still held" );
      is( $s->unlock, 1, "$desc: unlock" );
    }
    nothing_held( $k, $desc );
    $s->store( 'old value' ) if $ORIG;
  }
}

# --- a share removed under the handle ---------------------------------------------
SKIP: {
  # (0.17 passes the croak checks, but its DESTROY then keeps the removed segments attached)
  skip '0.17 keeps removed segments attached after DESTROY', 8 if $ORIG;
  my $k = new_key( 4 );
  my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => 1000 );
  $s->store( 'z' x 2000 );
  my @ids = chain_shmids( $k );
  purge_key( $k );
  my ( $r, $err ) = guarded( 'fetch on a removed share', sub { $s->fetch } );
  ok( !defined $r, 'fetch on a removed share croaks' );
  like( $err, qr/^IPC::ShareLite fetch\(\) error: .+ at $ME line \d+/, '... IPC::ShareLite fetch() error:, at the caller' );
  ( $r, $err ) = guarded( 'store on a removed share', sub { $s->store( 'x' ) } );
  ok( !defined $r, 'store on a removed share croaks' );
  like( $err, qr/^IPC::ShareLite store\(\) error: .+ at $ME line \d+/, '... IPC::ShareLite store() error:, at the caller' );
  ( $r, $err ) = guarded( 'lock on a removed share', sub { $s->lock( LOCK_EX | LOCK_NB ) } );
  ok( !$r, 'lock on a removed share fails' );
  ok( !defined semget( $k, 0, 0 ) && !defined shmget( $k, 0, 0 ), 'nothing was recreated' );
  my ( $ok ) = guarded( 'DESTROY of a removed share', sub { undef $s; 1 } );
  ok( $ok, 'the object goes away quietly' );
  my @left = grep { my $b; shmctl( $_, IPC::SysV::IPC_STAT(), $b ) } @ids;
  is( scalar @left, 0, '... and detaches every segment' );
}

# --- corrupted headers ----------------------------------------------------------
SKIP: {
  skip '0.17 hangs, crashes or keeps a lock on corrupted headers', 1 if $ORIG;

  my $SIZE = 1000;
  my $DATA = $SIZE - 16;

  my @scenarios = (
    [ 'length past the end of the chain', sub { my ( $h ) = @_; set_header( $h, -1, 5 * $DATA ); } ],
    [ 'length one byte past the head', sub { my ( $h ) = @_; set_header( $h, -1, $DATA + 1 ); } ],
    [ 'next_shmid pointing at itself', sub { my ( $h ) = @_; set_header( $h, $h, 3 * $DATA ); } ],
    [ 'negative length', sub { my ( $h ) = @_; set_header( $h, -1, -5 ); } ],
    [ 'length INT_MIN', sub { my ( $h ) = @_; set_header( $h, -1, -2**31 ); } ],
    [ 'huge length, one segment', sub { my ( $h ) = @_; set_header( $h, -1, 2**31 - 1 ); } ],
    [ 'huge length, self cycle', sub { my ( $h ) = @_; set_header( $h, $h, 2**31 - 1 ); } ],
    [ 'dangling next_shmid', sub {
        my ( $h ) = @_;
        my $x = shmget( IPC_PRIVATE, $SIZE, 0600 | IPC_CREAT ) // die "shmget: $!";
        shmctl( $x, IPC_RMID, 0 );
        set_header( $h, $x, 2 * $DATA );
      } ],
    [ 'chained segment of another size', sub {
        my ( $h, $extra ) = @_;
        my $x = own_shm( shmget( IPC_PRIVATE, 100, 0600 | IPC_CREAT ) // die "shmget: $!" );
        shmwrite( $x, pack( 'iiII', -1, 0, 0, 0 ), 0, 16 ) or die "shmwrite: $!";
        push @$extra, $x;
        set_header( $h, $x, $DATA + 500 );
      } ],
  );

  for my $sc ( @scenarios ) {
    my ( $name, $corrupt ) = @$sc;
    my $k = new_key( 8 );
    my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => $SIZE );
    $s->store( 'good' );
    my ( $head ) = chain_shmids( $k );
    my @extra;
    $corrupt->( $head, \@extra );
    my $segs = my_segments();

    my ( $r, $err ) = guarded( "fetch, $name", sub { $s->fetch } );
    ok( !defined $r, "$name: fetch croaks" ) or diag( 'fetch returned ' . length( $r ) . ' bytes' );
    like( $err, qr/^IPC::ShareLite fetch\(\) error: .+ at $ME line \d+/, "$name: IPC::ShareLite fetch() error:, at the caller" );
    is( my_segments(), $segs, "$name: reading created no segment" );
    nothing_held( $k, "$name, after fetch" );

    ( $r, $err ) = guarded( "num_segments, $name", sub { $s->num_segments; 1 } );
    ok( $r || $err =~ /^IPC::ShareLite/, "$name: num_segments returns or croaks, in bounded time" ) or diag $err;
    nothing_held( $k, "$name, after num_segments" );

    # a second fetch fails the same way
    ( $r, $err ) = guarded( "fetch again, $name", sub { $s->fetch } );
    ok( !defined $r && $err =~ /^IPC::ShareLite fetch\(\) error: /, "$name: a second fetch croaks too" );

    # repair the header: the share works again, from this handle and a new one
    set_header( $head, -1, 0 );
    ( $r, $err ) = guarded( "fetch after repair, $name", sub { $s->fetch } );
    is( $r, '', "$name: after repair, fetch gives the empty value" ) or diag $err;
    my $value = join '', map { chr( $_ % 251 ) } 1 .. 3 * $DATA + 7;
    ( $r, $err ) = guarded( "store after repair, $name", sub { $s->store( $value ) } );
    is( $r, 1, "$name: after repair, a 4-segment store works" ) or diag $err;
    ( $r, $err ) = guarded( "fetch after repair, $name", sub { $s->fetch } );
    ok( defined $r && $r eq $value, "$name: and fetch returns it" ) or diag $err;
    is( scalar( () = chain_shmids( $k ) ), 4, "$name: a clean chain of 4 in the kernel" );
    is( other_lock( $k ), '1', "$name: another process can lock" );
    my $t = new_or_diag( -key => $k );
    ( $r, $err ) = guarded( "fetch by a new handle, $name", sub { $t->fetch } );
    ok( defined $r && $r eq $value, "$name: a new handle reads it" ) or diag $err;
    undef $t;
    ( $r, $err ) = guarded( "DESTROY, $name", sub { undef $s; 1 } );
    ok( $r, "$name: DESTROY returns" ) or diag $err;
    ok( !defined semget( $k, 0, 0 ), "$name: share removed" );
    shmctl( $_, IPC_RMID, 0 ) for @extra;
  }

  # stores on a corrupted chain: croak or succeed correctly, never hang or keep a lock
  my @store_scenarios = (
    [ 'next_shmid pointing at itself', sub { my ( $h ) = @_; set_header( $h, $h, 0 ); } ],
    [ 'dangling next_shmid', sub {
        my ( $h ) = @_;
        my $x = shmget( IPC_PRIVATE, $SIZE, 0600 | IPC_CREAT ) // die "shmget: $!";
        shmctl( $x, IPC_RMID, 0 );
        set_header( $h, $x, 0 );
      } ],
    [ 'chained segment of another size', sub {
        my ( $h, $extra ) = @_;
        my $x = own_shm( shmget( IPC_PRIVATE, 100, 0600 | IPC_CREAT ) // die "shmget: $!" );
        shmwrite( $x, pack( 'iiII', -1, 0, 0, 0 ), 0, 16 ) or die "shmwrite: $!";
        push @$extra, $x;
        set_header( $h, $x, 0 );
      } ],
  );
  for my $sc ( @store_scenarios ) {
    my ( $name, $corrupt ) = @$sc;
    my $k = new_key( 8 );
    my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => $SIZE );
    my ( $head ) = chain_shmids( $k );
    my @extra;
    $corrupt->( $head, \@extra );
    my $value = 'q' x ( 3 * $DATA );
    my ( $r, $err ) = guarded( "store, $name", sub { $s->store( $value ) } );
    if ( defined $r ) {
      is( $r, 1, "$name: store succeeded" );
      my ( $f, $ferr ) = guarded( "fetch, $name", sub { $s->fetch } );
      ok( defined $f && $f eq $value, "$name: ... and fetch returns the value" ) or diag $ferr;
    }
    else {
      like( $err, qr/^IPC::ShareLite store\(\) error: .+ at $ME line \d+/, "$name: store croaks with IPC::ShareLite store() error:" );
    }
    nothing_held( $k, "$name, after store" );
    set_header( $head, -1, 0 );
    ( $r, $err ) = guarded( "store after repair, $name", sub { $s->store( 'fine' ) } );
    is( $r, 1, "$name: store works after repair" ) or diag $err;
    ( $r, $err ) = guarded( "fetch after repair, $name", sub { $s->fetch } );
    is( $r, 'fine', "$name: fetch works after repair" ) or diag $err;
    ( $r, $err ) = guarded( "DESTROY, $name", sub { undef $s; 1 } );
    ok( $r, "$name: DESTROY returns" ) or diag $err;
    shmctl( $_, IPC_RMID, 0 ) for @extra;
  }

  # a two-segment cycle: fetch croaks, DESTROY terminates and removes everything
  {
    my $k = new_key( 8 );
    my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => $SIZE );
    $s->store( 'c' x ( 2 * $DATA ) );
    my @ids = chain_shmids( $k );
    is( scalar @ids, 2, 'two segments' );
    set_header( $ids[1], $ids[0], 0 );    # second links back to the head
    set_header( $ids[0], $ids[1], 5 * $DATA );
    my ( $r, $err ) = guarded( 'fetch, two-segment cycle', sub { $s->fetch } );
    ok( !defined $r, 'two-segment cycle: fetch croaks' );
    like( $err, qr/^IPC::ShareLite fetch\(\) error: /, 'two-segment cycle: IPC::ShareLite fetch() error:' );
    nothing_held( $k, 'two-segment cycle' );
    ( $r, $err ) = guarded( 'num_segments, two-segment cycle', sub { $s->num_segments; 1 } );
    ok( $r || $err =~ /^IPC::ShareLite/, 'two-segment cycle: num_segments returns or croaks' ) or diag $err;
    ( $r, $err ) = guarded( 'DESTROY, two-segment cycle', sub { undef $s; 1 } );
    ok( $r, 'two-segment cycle: DESTROY returns' ) or diag $err;
    ok( !defined semget( $k, 0, 0 ), 'two-segment cycle: semaphore set removed' );
    my @left = grep { my $b; shmctl( $_, IPC::SysV::IPC_STAT(), $b ) } @ids;
    is( scalar @left, 0, 'two-segment cycle: both segments removed' );
    shmctl( $_, IPC_RMID, 0 ) for @left;
  }

  # DESTROY (removing) straight on a self cycle
  {
    my $k = new_key( 4 );
    my $s = new_or_diag( -key => $k, -create => 'yes', -destroy => 'yes', -size => $SIZE );
    my ( $head ) = chain_shmids( $k );
    set_header( $head, $head, 2 * $DATA );
    my ( $r, $err ) = guarded( 'DESTROY, self cycle', sub { undef $s; 1 } );
    ok( $r, 'self cycle: DESTROY returns' ) or diag $err;
    ok( !defined semget( $k, 0, 0 ) && !defined shmget( $k, 0, 0 ), 'self cycle: share removed' );
  }
}

no_leaks_ok();
done_testing;
