# Stress: 8 processes on one share, 4 of our IPC::ShareLite and 4 of the
# original 0.17 (interleaved), each doing 5,000 locked increments
# (lock(LOCK_EX) / fetch / store(value + 1) / unlock). Every increment must
# land: the final value is exactly 40,000 and the version 2 + 40,000
# (creation, the initial store, one per increment). Each worker also checks
# that the values it sees never go backwards and that every lock/unlock call
# succeeds; afterwards no lock may be left held (sem[1] = sem[2] = 0).
#
# This process creates the share with our module, then only coordinates:
# start barrier through files, every wait capped.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use SLTest;
use SLInterop;
use IPC::ShareLite qw(:all);

need_ref();
plan skip_all => 'needs our module (0.18) in this process' if $IPC::ShareLite::VERSION eq '0.17';

my $WORKERS = 8;
my $N       = 5000;
my $CAP     = 170;    # seconds for all workers together

my $t0  = time;
my $key = new_key( 4 );
my $tmp = tmp_dir();

my $share = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 0 );
ok( $share, 'our module creates the share' );
$share->store( '0' );
is( $share->version, 2, 'version 2 after creation and one store' );

my @workers;
for my $i ( 0 .. $WORKERS - 1 ) {
  my $impl = $i % 2 ? 'orig' : 'ours';
  my $tag  = "$impl$i";
  push @workers, [ $tag, spawn_child( $impl, { stdout => "$tmp/out.$tag" }, <<'EOC', $key, $N, $tmp, $tag ) ];
my ( $key, $n, $dir, $tag ) = @ARGV;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go", 60 );
my ( $err, $prev, $done ) = ( 0, -1, 0 );
for ( 1 .. $n ) {
  my $l = $s->lock( LOCK_EX );
  unless ( $l ) { $err++; warn "$tag: lock failed: $!\n" if $err < 5; next }
  my $v = $s->fetch;
  unless ( $v =~ /^\d+\z/ && $v >= $prev ) { $err++; warn "$tag: saw '$v' after $prev\n" if $err < 5 }
  $s->store( $v + 1 );
  $prev = $v + 1;
  unless ( $s->unlock ) { $err++; warn "$tag: unlock failed: $!\n" if $err < 5 }
  $done++;
}
print "done $done errors $err\n";
EOC
}

ok( wait_for_files( 30, map { "$tmp/ready.$_->[0]" } @workers ), "all $WORKERS workers opened the share" );
put_file( "$tmp/go", 1 );
my $t1  = time;
my $end = $t1 + $CAP;
for my $w ( @workers ) {
  my ( $tag, $pid ) = @$w;
  my $left = $end - time;
  $left = 1 if $left < 1;
  is( wait_bounded( $pid, $left ), 0, "worker $tag exits cleanly in time" );
  my $o = do { local ( @ARGV, $/ ) = ( "$tmp/out.$tag" ); <> } // '';
  is( $o, "done $N errors 0\n", "worker $tag: $N increments, every lock/fetch/unlock fine" );
}
my $el = time - $t1;
note sprintf( '%d increments in %.1f s (%.0f/s)', $WORKERS * $N, $el, $WORKERS * $N / ( $el || 1 ) );

my $total = $WORKERS * $N;
is( $share->fetch,   $total,     "final value is exactly $total" );
is( $share->version, 2 + $total, 'version is 2 + ' . $total );
my @sem = sem_values( $key );
is( "@sem[1,2]", '0 0', 'no reader or writer lock left held' );

# 0.17 sees the same total
my ( $rc, $out ) = run_impl( 'orig', child_lib() . 'my $s = open_share( key => $ARGV[0] ); print $s->fetch, " ", $s->version, "\n";', $key );
is( $rc,  0,                             '0.17 opens the share at the end' );
is( $out, "$total " . ( 2 + $total ) . "\n", "0.17 sees $total, version " . ( 2 + $total ) );

my @ids = chain_shmids( $key );
$share->remove;
undef $share;    # remove() keeps the (marked) head attached until the object goes
ok( share_gone( $key, @ids ), 'share removed' );
note sprintf( 'total runtime %.1f s', time - $t0 );

no_leaks_ok();
done_testing;
