# Atomicity of large values across implementations: two writers (one of ours,
# one of the original 0.17) store distinct values of 20 KB to 400 KB (segment
# size default 65536, so chains of 1 to 7 segments grow and shrink all the
# time), while four readers (2 ours, 2 0.17) fetch without explicit locks
# (fetch takes the shared lock itself) and validate each value whole.
#
# Values are self-describing: a header "len:char:writer:seq:" followed by a
# filler of 8-byte blocks that carry the writer and sequence number, so a value
# made of pieces of two stores (even two of the same length or letter) shows.
# Every fetched value must be whole (length and every byte as its header says),
# and no writer's sequence may go backwards for a reader.
#
# 100,000 reads in total (25,000 per reader); each reader writes its counts to
# a file and this process sums them: 0 torn values. Writers store until the
# readers are done. A 0.17 writer reopens its handle every 4 stores (a 0.17
# handle never reuses chain keys, see t/12). Every wait is capped.

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

my $READS = 100_000;
my @READERS = qw(ours orig ours orig);
my $PER   = $READS / @READERS;
my $CAP   = 150;    # seconds for the readers

my $VALUE_LIB = <<'EOC';
# a whole value: header then 8-byte blocks "Wsssssss" (W = writer letter)
sub av {
  my ( $ch, $w, $seq, $len ) = @_;
  my $h   = sprintf( '%06d:%s:%s:%07d:', $len, $ch, $w, $seq );
  my $blk = sprintf( '%s%07d', $w, $seq % 10_000_000 );
  my $n   = $len - length $h;
  return $h . substr( $blk x ( int( $n / 8 ) + 1 ), 0, $n );
}
# writer letter and seq of a whole value, () for anything else
sub av_check {
  my $v = shift;
  return () unless defined $v && $v =~ /\A(\d{6}):([a-z]):([A-Z]):(\d{7}):/;
  my ( $len, $ch, $w, $seq ) = ( $1, $2, $3, $4 );
  return () unless length( $v ) == $len && $v eq av( $ch, $w, $seq, $len );
  return ( $w, $seq );
}
# length of the value number $seq of writer $w: 20 KB .. 400 KB, never the
# same twice in a row
sub av_len {
  my ( $w, $seq ) = @_;
  return 20_000 + ( ( $seq * 7919 + ord( $w ) * 104_729 ) % 380_001 );
}
EOC

my $t0  = time;
my $key = new_key( 64 );
my $tmp = tmp_dir();

# Ours creates the share (default size) and stores a first whole value.
{
  my ( $rc ) = run_impl( 'ours', child_lib() . $VALUE_LIB . <<'EOC', $key );
my $s = open_share( key => $ARGV[0], create => 1 );
$s->store( av( 'i', 'I', 0, 30_000 ) );
EOC
  is( $rc, 0, 'ours creates the share and stores a first value' );
}

my %kids;
my @rtags;
for my $i ( 0 .. $#READERS ) {
  my $tag = "reader$i-$READERS[$i]";
  push @rtags, $tag;
  $kids{$tag} = spawn_child( $READERS[$i], { stdout => "$tmp/out.$tag" }, $VALUE_LIB . <<'EOC', $key, $tmp, $tag, $PER, $CAP );
my ( $key, $dir, $tag, $n, $cap ) = @ARGV;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go", 60 );
my ( $reads, $torn, $back, $err, $timeout, $distinct ) = ( 0, 0, 0, 0, 0, 0 );
my ( %last, %seen, $prev );
my $end = time + $cap;
while ( $reads < $n ) {
  my $v = eval { $s->fetch };
  $reads++;
  if ( !defined $v ) { $err++; warn "$tag: fetch failed: $@" if $err <= 3; next }
  my ( $w, $seq ) = av_check( $v );
  if ( !defined $w ) {
    $torn++;
    warn "$tag: torn value: length " . length( $v ) . ' head ' . substr( $v, 0, 28 ) . "\n" if $torn <= 3;
  }
  else {
    $back++ if defined $last{$w} && $seq < $last{$w};
    $last{$w} = $seq;
    $seen{$w}++;
    $distinct++ unless defined $prev && $prev eq "$w$seq";
    $prev = "$w$seq";
  }
  if ( time > $end ) { $timeout = 1; last }
  # no writer preference in the protocol: leave the writers gaps now and then
  sleep 0.0002 unless $reads % 4;
}
put_file( "$dir/done.$tag", 1 );
printf "reads %d torn %d backwards %d errors %d timeout %d distinct %d seen %s\n",
  $reads, $torn, $back, $err, $timeout, $distinct, join( ',', map { "$_=$seen{$_}" } sort keys %seen );
EOC
}

my %wletter = ( ours => 'O', orig => 'R' );
my @wtags;
for my $impl ( 'ours', 'orig' ) {
  my $tag = "writer-$impl";
  push @wtags, $tag;
  $kids{$tag} = spawn_child( $impl, { stdout => "$tmp/out.$tag" }, $VALUE_LIB . <<'EOC', $key, $tmp, $tag, $wletter{$impl}, $CAP + 20, join( ',', @rtags ) );
my ( $key, $dir, $tag, $w, $cap, $readers ) = @ARGV;
my @done = map { "$dir/done.$_" } split /,/, $readers;
my $s = open_share( key => $key );
put_file( "$dir/ready.$tag", 1 );
wait_file( "$dir/go", 60 );
my ( $seq, $err, $timeout ) = ( 0, 0, 0 );
my $end = time + $cap;
until ( !grep { !-e $_ } @done ) {
  if ( time > $end ) { $timeout = 1; last }
  $s = open_share( key => $key ) if $ORIG && $seq && $seq % 4 == 0;
  my $ch = chr( ord( 'a' ) + $seq % 26 );
  eval { $s->store( av( $ch, $w, $seq, av_len( $w, $seq ) ) ); 1 } or do { $err++; warn "$tag: $@" if $err <= 3 };
  $seq++;
  sleep 0.0005;
}
print "stores $seq errors $err timeout $timeout\n";
EOC
}

my @all = ( @rtags, @wtags );
ok( wait_for_files( 30, map { "$tmp/ready.$_" } @all ), 'writers and readers opened the share' );
put_file( "$tmp/go", 1 );
my $t1  = time;
my $end = $t1 + $CAP + 40;
my %out;
for my $tag ( @all ) {
  my $left = $end - time;
  $left = 1 if $left < 1;
  is( wait_bounded( $kids{$tag}, $left ), 0, "$tag exits cleanly in time" );
  $out{$tag} = do { local ( @ARGV, $/ ) = ( "$tmp/out.$tag" ); <> } // '';
}
note sprintf( 'readers and writers ran %.1f s', time - $t1 );

my ( $reads, $torn, $back, $errs ) = ( 0, 0, 0, 0 );
for my $tag ( @rtags ) {
  my ( $r, $t, $b, $e, $to, $d, $seen ) =
    $out{$tag} =~ /^reads (\d+) torn (\d+) backwards (\d+) errors (\d+) timeout (\d) distinct (\d+) seen (\S*)$/;
  ok( defined $r, "$tag reported its counts" ) or diag $out{$tag};
  next unless defined $r;
  note "$tag: $r reads, $d changes of value seen, per writer: $seen";
  $reads += $r;
  $torn  += $t;
  $back  += $b;
  $errs  += $e;
  is( $to, 0, "$tag: finished its reads within $CAP s" );
  ok( $seen =~ /\bO=\d/ && $seen =~ /\bR=\d/, "$tag saw whole values of both writers" );
  cmp_ok( $d, '>=', 50, "$tag saw the value change at least 50 times" );
}
is( $reads, $READS, "$READS reads in total" );
is( $torn,  0,      "0 torn values out of $reads reads" );
is( $errs,  0,      'no fetch failed' );
is( $back,  0,      "no writer's sequence went backwards for a reader" );
for my $tag ( @wtags ) {
  my ( $n, $e, $to ) = $out{$tag} =~ /^stores (\d+) errors (\d+) timeout (\d)$/;
  ok( defined $n, "$tag reported" ) or diag $out{$tag};
  next unless defined $n;
  note "$tag: $n stores";
  is( $e,  0, "$tag: no store failed" );
  is( $to, 0, "$tag: stopped when the readers were done" );
  cmp_ok( $n, '>=', 50, "$tag stored at least 50 values" );
}

# Final check with our module: a whole value, chain length matching it.
my $s = IPC::ShareLite->new( -key => $key );
my $v = $s->fetch;
my $ok = eval $VALUE_LIB . 'av_check( $v ) ? 1 : 0';
ok( $ok, 'final value is whole' );
my $d = 65536 - 16;
is( $s->num_segments, int( ( length( $v ) + $d - 1 ) / $d ), 'num_segments matches its length' );
my @ids = chain_shmids( $key );
$s->remove;
undef $s;
ok( share_gone( $key, @ids ), 'share removed' );
note sprintf( 'total runtime %.1f s', time - $t0 );

no_leaks_ok();
done_testing;
