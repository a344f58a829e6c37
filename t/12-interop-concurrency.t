# Concurrent interop between our IPC::ShareLite and the original 0.17, both
# directions (which side creates/initialises the share, and which side checks
# and removes it at the end):
# - counter: 2 processes of ours + 2 of 0.17 each do N rounds of
#   lock(LOCK_EX) / fetch / store(value+1) / unlock on one share; the total must
#   be exactly 4*N and the version 1 (creation) + 1 (initial store) + 4*N.
# - torn reads: one writer of each implementation stores distinct large values
#   of different lengths (each value carries a header with its own letter,
#   length and sequence number), while one reader of each implementation
#   fetches without explicit locks (fetch takes the shared lock itself) and
#   checks every value is whole (length and content match the header) and that
#   no writer's sequence goes backwards. Torn/backwards counts must be 0.
#
# Only children touch the share; this process coordinates (start barrier
# through files, every wait capped at 20 s). SHARELITE_INTEROP_SELFTEST=1 runs
# 0.17 on both sides (checks the test itself). A 0.17 writer reopens its handle
# every few stores: a 0.17 handle never reuses chain keys (next_key only grows),
# so a long-lived one would walk out of the keys this file reserved.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SLTest;
use SLInterop;

need_ref();

my $N      = 1000;   # counter rounds per process
my $STORES = 300;    # stores per torn-read writer

sub counter_scenario {
  my ( $Ci, $Vi ) = @_;
  my $key = new_key( 4 );
  my $tmp = tmp_dir();

  my ( $rc, $out ) = run_impl( SLInterop::real_impl( $Ci ), child_lib() . <<'EOC', $key );
my $s = open_share( key => $ARGV[0], create => 1 );
$s->store( '0' );
print $s->version, "\n";
EOC
  is( $rc, 0, "$Ci creates and stores 0" );
  is( $out, "2\n", 'version 2 after creation and one store' );

  my @workers;
  for my $impl ( 'ours', 'ours', 'orig', 'orig' ) {
    my $tag = $impl . ( scalar @workers );
    push @workers, [ $tag, spawn_child( $impl, { stdout => "$tmp/out.$tag" }, <<'EOC', $key, $N, $tmp, $tag ) ];
my ( $key, $n, $dir, $tag ) = @ARGV;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go" );
my ( $err, $prev, $done ) = ( 0, -1, 0 );
for ( 1 .. $n ) {
  my $l = $s->lock( LOCK_EX );
  unless ( $l ) { $err++; next }
  my $v = $s->fetch;
  $err++ unless $v =~ /^\d+\z/ && $v >= $prev;
  $s->store( $v + 1 );
  $prev = $v + 1;
  $err++ unless $s->unlock;
  $done++;
}
print "done $done errors $err\n";
EOC
  }
  ok( wait_for_files( 20, map { "$tmp/ready.$_->[0]" } @workers ), 'all 4 workers opened the share' );
  put_file( "$tmp/go", 1 );
  for my $w ( @workers ) {
    my ( $tag, $pid ) = @$w;
    is( wait_bounded( $pid, 20 ), 0, "worker $tag exits cleanly within 20 s" );
    my $o = do { local ( @ARGV, $/ ) = ( "$tmp/out.$tag" ); <> };
    is( $o, "done $N errors 0\n", "worker $tag: $N rounds, every lock/fetch/unlock fine" );
  }

  my @ids = chain_shmids( $key );
  ( $rc, $out ) = run_impl( SLInterop::real_impl( $Vi ), child_lib() . <<'EOC', $key );
my $s = open_share( key => $ARGV[0], destroy => 1 );
print join( ' ', $s->fetch, $s->version, $s->num_segments ), "\n";
EOC
  is( $rc, 0, "$Vi checks and removes the share" );
  my $total = 4 * $N;
  my $ver   = 2 + $total;
  is( $out, "$total $ver 1\n", "$Vi sees value $total, version $ver, 1 segment" );
  ok( share_gone( $key, @ids ), 'share removed' );
}

# A self-describing value: letter, length, writer sequence, then the letter.
my $VALUE_LIB = <<'EOC';
sub tv {
  my ( $ch, $len, $seq ) = @_;
  my $h = sprintf( '%s%09d:%06d:', $ch, $len, $seq );
  return $h . ( $ch x ( $len - length $h ) );
}
# (writer index, seq) of a whole value, () for a torn one
sub tv_check {
  my $v = shift;
  return () unless $v =~ /\A([a-z])(\d{9}):(\d{6}):/;
  my ( $ch, $len, $seq ) = ( $1, $2, $3 );
  return () unless length( $v ) == $len && $v eq tv( $ch, $len, $seq );
  return ( ( $ch =~ /[abc]/ ? 0 : $ch =~ /[def]/ ? 1 : 2 ), $seq );
}
EOC

sub torn_scenario {
  my ( $Ci, $Vi ) = @_;
  my $key = new_key( 48 );
  my $tmp = tmp_dir();

  my ( $rc ) = run_impl( SLInterop::real_impl( $Ci ), child_lib() . $VALUE_LIB . <<'EOC', $key );
my $s = open_share( key => $ARGV[0], create => 1 );
$s->store( tv( 'i', 1000, 0 ) );
EOC
  is( $rc, 0, "$Ci creates the share and stores a first value" );

  my %kids;
  # writer 0 (ours) writes a/b/c, writer 1 (orig) writes d/e/f
  my %spec = (
    ours => 'a:150000,b:70000,c:300000',
    orig => 'd:160000,e:60000,f:280000',
  );
  for my $impl ( 'ours', 'orig' ) {
    my $tag = "writer-$impl";
    $kids{$tag} = spawn_child( $impl, { stdout => "$tmp/out.$tag" }, $VALUE_LIB . <<'EOC', $key, $STORES, $tmp, $tag, $spec{$impl} );
my ( $key, $n, $dir, $tag, $spec ) = @ARGV;
my @vals = map { [ split /:/ ] } split /,/, $spec;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go" );
my $err = 0;
for my $i ( 0 .. $n - 1 ) {
  my ( $ch, $len ) = @{ $vals[ $i % @vals ] };
  # a 0.17 handle never reuses chain keys: reopen it now and then
  $s = open_share( key => $key ) if $ORIG && $i && $i % 3 == 0;
  eval { $s->store( tv( $ch, $len, $i ) ); 1 } or do { $err++; warn $@ };
  sleep 0.001;
}
put_file( "$dir/done.$tag", 1 );
print "stores $n errors $err\n";
EOC
  }
  for my $impl ( 'ours', 'orig' ) {
    my $tag = "reader-$impl";
    $kids{$tag} = spawn_child( $impl, { stdout => "$tmp/out.$tag" }, $VALUE_LIB . <<'EOC', $key, $tmp, $tag );
my ( $key, $dir, $tag ) = @ARGV;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go" );
my ( $fetches, $torn, $back, $timeout ) = ( 0, 0, 0, 0 );
my @last = ( -1, -1, -1 );
my @seen = ( 0, 0, 0 );
my $end  = time + 20;
my $last_round = 0;
while ( 1 ) {
  my $finished = -e "$dir/done.writer-ours" && -e "$dir/done.writer-orig";
  my $v = eval { $s->fetch };
  $fetches++;
  my ( $w, $seq ) = defined $v ? tv_check( $v ) : ();
  if ( !defined $w ) {
    $torn++;
    warn "$tag: torn value: length " . ( defined $v ? length $v : 'undef' ) . ' head ' . ( defined $v ? substr( $v, 0, 30 ) : $@ ) . "\n" if $torn <= 3;
  }
  else {
    $back++ if $seq < $last[$w];
    $last[$w] = $seq;
    $seen[$w]++;
  }
  last if $finished;
  if ( time > $end ) { $timeout = 1; last }
  sleep 0.0005 * int rand 4;
}
print "fetches $fetches torn $torn backwards $back timeout $timeout seen @seen\n";
EOC
  }
  my @tags = sort keys %kids;
  ok( wait_for_files( 20, map { "$tmp/ready.$_" } @tags ), 'writers and readers opened the share' );
  put_file( "$tmp/go", 1 );
  my %out;
  for my $tag ( @tags ) {
    is( wait_bounded( $kids{$tag}, 30 ), 0, "$tag exits cleanly" );
    $out{$tag} = do { local ( @ARGV, $/ ) = ( "$tmp/out.$tag" ); <> } // '';
  }
  for my $impl ( 'ours', 'orig' ) {
    is( $out{"writer-$impl"}, "stores $STORES errors 0\n", "writer-$impl: $STORES stores, no error" );
    my ( $f, $t, $b, $to, @seen ) = $out{"reader-$impl"} =~ /^fetches (\d+) torn (\d+) backwards (\d+) timeout (\d) seen (\d+) (\d+) (\d+)$/;
    ok( defined $f, "reader-$impl reported" ) or diag $out{"reader-$impl"};
    next unless defined $f;
    note "reader-$impl: $f fetches; whole values seen from writer-ours $seen[0], writer-orig $seen[1], initial $seen[2]";
    is( $t,  0, "reader-$impl: 0 torn values out of $f" );
    is( $b,  0, "reader-$impl: no writer's sequence went backwards" );
    is( $to, 0, "reader-$impl: writers finished within 20 s" );
    cmp_ok( $f, '>=', 20, "reader-$impl: fetched at least 20 times" );
    ok( $seen[0] && $seen[1], "reader-$impl: saw whole values of both writers" );
  }

  my @ids = chain_shmids( $key );
  my $rc2;
  ( $rc2, my $o ) = run_impl( SLInterop::real_impl( $Vi ), child_lib() . $VALUE_LIB . <<'EOC', $key, $STORES );
my $s = open_share( key => $ARGV[0], destroy => 1 );
my $v = $s->fetch;
my ( $w, $seq ) = tv_check( $v );
my $d = 65536 - 16;
my $segs = int( ( length( $v ) + $d - 1 ) / $d );
print defined $w ? "whole seq $seq segs " . ( $s->num_segments == $segs ? 'ok' : 'bad ' . $s->num_segments . " for $segs" ) : 'torn', "\n";
EOC
  is( $rc2, 0, "$Vi checks and removes the share" );
  is( $o, 'whole seq ' . sprintf( '%06d', $STORES - 1 ) . " segs ok\n", "$Vi: final value is a writer's last one, num_segments matches its length" );
  ok( share_gone( $key, @ids ), 'share removed' );
}

for my $d ( directions() ) {
  my ( $A, $B ) = @$d;
  subtest "counter: $A creates, 2 ours + 2 orig increment, $B checks" => sub {
    eval { counter_scenario( $A, $B ); 1 } or fail( "scenario died: $@" );
  };
  subtest "torn reads: $A creates, ours+orig write and read, $B checks" => sub {
    eval { torn_scenario( $A, $B ); 1 } or fail( "scenario died: $@" );
  };
}

no_leaks_ok();
done_testing;
