# An unchanged value is handed out again after a check without the lock
# (rust-core/src/fetch_cache.rs, unchanged_unlocked; doc/FORMAT.md, 6): no
# reader of ours may ever return a value older than one another reader has
# already seen, nor go back in time itself, nor return a torn value, while
# writers of both implementations store and are SIGKILLed at random moments
# (t/lib/SLFreshness.pm says how this is watched). Values are 4 KB or more,
# so that readers keep them and the unlocked check is what serves them. In
# three runs of a few seconds on a share of 4096-byte segments:
#  - writers of ours killed, a 0.17 writer (or another of ours) not, every
#    value of the same length: a store of ours killed after emptying the
#    value, then a 0.17 store putting the same length back, is the case that
#    the writer semaphore in the check is there for;
#  - writers of both implementations killed, no two values of one length (so
#    that a 0.17 writer killed between its two header writes, the known case
#    the locked check cannot see either, is not met);
#  - the same without any kill, three readers.

use lib 't/lib';
use SLTest;
use SLFreshness;
use strict;
use warnings;
use Test::More;
use IPC::ShareLite qw(:lock);

my $ref     = have_ref();
my $other   = $ref ? 'orig' : 'ours';
my $seconds = $ENV{SL_FRESHNESS_SECONDS} || 3;
diag( 'reference 0.17 not available: the other writer is ours' ) unless $ref;

my @runs = (
  [ 'writers of ours killed, values of one length', 2, [ [ 'ours', 5000, 1, 0 ], [ $other, 5000, 0, 0 ] ] ],
  [ 'writers of both killed, lengths all different', 2, [ [ 'ours', 'count', 1, 0 ], [ $other, 'count', 1, 0 ] ] ],
  [ 'no kill', 3, [ [ 'ours', 'count', 0, 0 ], [ $other, 'count', 0, 0 ] ] ],
);

for my $run ( @runs ) {
  my ( $name, $readers, $writers ) = @$run;
  my $key = new_key( 40 );
  my $s = IPC::ShareLite->new( -key => $key, -create => 1, -size => 4096, -destroy => 1 ) or die "new: $!";
  $s->store( '' );
  my $r = watchdog_run( $name, sub {
      run_freshness( share => $s, key => $key, size => 4096, seconds => $seconds, readers => $readers, writers => $writers );
  } );
  my @bad = grep { $_->[0] != 0 || $_->[1] !~ /^fetches=(\d+) empty=\d+ errors=0$/m } @{ $r->{readers} };
  ok( !@bad, "$name: $readers readers never went back in time, saw no torn value, got no error" )
    or diag( join "\n", map { "rc $_->[0]: $_->[1]" } @bad );
  my $fetches = 0;
  $fetches += ( $_->[1] =~ /fetches=(\d+)/ )[0] // 0 for @{ $r->{readers} };
  ok( $fetches > 100, "$name: the readers fetched ($fetches values, $r->{writers} writers started, $r->{kills} killed)" );
  ok( eval { $s->store( 'last' ); $s->fetch eq 'last' }, "$name: the share works after the run" ) or diag $@;
  is( $s->lock( LOCK_EX | LOCK_NB ), 1, "$name: no lock is left held" );
  $s->unlock;
  undef $s;
  purge_key( $_ ) for $key .. $key + 40;
}

no_leaks_ok();
done_testing;

# Runs $code, failing the test (and going on) if it takes over a minute.
sub watchdog_run {
  my ( $name, $code ) = @_;
  my $r = eval { timed( 90, $code ) };
  return $r if $r;
  fail( "$name: the run ended: $@" );
  return { readers => [], writers => 0, kills => 0 };
}
