# The fetch cache: a handle hands an unchanged value out again without
# copying it, and reuses its buffer when nobody holds the old value. Values
# already handed out never change, and the cache never returns stale data:
# not after a store by another process of either implementation, not after a
# writer was killed in the middle of a store.
use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use IPC::ShareLite qw( :lock );
use Time::HiRes qw( sleep );
use POSIX ();

my $key    = new_key();
# Segments larger than any value here: no chained segments, so a killed 0.17
# writer cannot leave keyed ones behind (0.17 climbs through key+1, key+2,
# ... as it grows a chain, into other tests' keys).
my $writer = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 1, -size => 262144 );
my $reader = IPC::ShareLite->new( -key => $key );

sub value_of { my ( $tag, $len ) = @_; substr( "$tag:$len:" . ( $tag x $len ), 0, $len ) }

# Kept values never change, whatever is fetched later.
{
  my @kept;
  for my $i ( 1 .. 40 ) {
    my $v = value_of( chr( 65 + $i % 26 ), 4096 + 37 * $i );
    $writer->store( $v );
    push @kept, [ $v, $reader->fetch ];
    my $dropped = $reader->fetch;    # same value again, then dropped
    is( $dropped, $v, "fetch $i again returns the same value" ) if $i % 10 == 0;
    my $modified = $reader->fetch;
    $modified .= 'changed';          # the copy is the caller's own
  }
  is( scalar( grep { $_->[0] ne $_->[1] } @kept ), 0, 'every value handed out kept its content' );
}

# Same length, other content: the version tells them apart.
{
  $writer->store( value_of( 'x', 8192 ) );
  is( $reader->fetch, value_of( 'x', 8192 ), 'fetched' );
  $writer->store( value_of( 'y', 8192 ) );
  is( $reader->fetch, value_of( 'y', 8192 ), 'a store of the same length is seen' );
  $reader->store( value_of( 'z', 8192 ) );
  is( $reader->fetch, value_of( 'z', 8192 ), "the handle's own store is seen" );
}

# Stores by other processes, of both implementations.
for my $impl ( 'ours', have_ref() ? 'orig' : () ) {
  my $v = value_of( $impl eq 'ours' ? 'o' : 'r', 70000 );
  is( $reader->fetch, $reader->fetch, "$impl: unchanged value fetched twice" );
  my ( $rc ) = run_impl( $impl, 'IPC::ShareLite->new( -key => shift )->store( shift )', $key, $v );
  is( $rc, 0, "$impl stored" );
  is( $reader->fetch, $v, "$impl: the next fetch returns the new value" );
}

# A writer killed at random moments: afterwards the cached handle agrees
# with a fresh process, whatever state the kill left.
for my $impl ( 'ours', have_ref() ? 'orig' : () ) {
  my $disagree = 0;
  for my $round ( 1 .. 25 ) {
    my $pid = spawn_impl( $impl, <<'PERL', $key, $round );
use POSIX ();
my ( $key, $round ) = @ARGV;
my $s = IPC::ShareLite->new( -key => $key );
for my $i ( 1 .. 1_000_000 ) {
  my $len = 5000 + ( $i * 7919 + $round ) % 200_000;
  my $tag = chr( 97 + $i % 26 );
  # 0.17 cannot store past a link a killed 0.17 writer left dangling, and
  # then keeps the lock and would hang in DESTROY: leave at once instead.
  eval { $s->store( substr( "$tag:$len:" . ( $tag x $len ), 0, $len ) ); 1 } or POSIX::_exit( 0 );
}
PERL
    sleep( 0.02 + rand( 0.05 ) );
    my $before = $reader->fetch;    # fill the cache while the writer runs
    kill 'KILL', $pid;
    wait_child( $pid );
    my $cached = $reader->fetch;
    my ( $rc, $fresh ) = run_impl( 'ours', 'print IPC::ShareLite->new( -key => shift )->fetch', $key );
    $disagree++ if $rc != 0 || $cached ne $fresh;
    my ( $tag, $len ) = $cached =~ /^(.):(\d+):/;
    $disagree++ if length $cached && !( defined $len && $cached eq value_of( $tag, $len ) );
    # Our store repairs what a killed 0.17 writer leaves for the next one.
    $writer->store( value_of( 'R', 200_000 ) );
  }
  is( $disagree, 0, "$impl writer killed 25 times: the cached handle always agrees with a fresh one" );
  ok( $writer->lock( LOCK_EX | LOCK_NB ), "$impl: no lock left held" );
  $writer->unlock;
}

undef $reader;
undef $writer;
no_leaks_ok();
done_testing;
