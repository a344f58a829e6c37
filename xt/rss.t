# Memory growth of our module in a long-running process: 20,000 store/fetch
# rounds of 100 KB values (each different, default segment size, so 2
# segments and a real copy every fetch) keep VmRSS (/proc/self/status) flat:
# growth after a warm-up of 1,000 rounds < 10 MB. A second phase does the
# same for 5,000 rounds of calls that croak or wait (fetch of a corrupted
# header, LOCK_NB that would block, a 1 ms lock timeout, a store growing to
# 4 segments and shrinking back, opening and dropping a handle).

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use SLTest;
use IPC::ShareLite qw(:all);

plan skip_all => 'needs our module (0.18) in this process' if $IPC::ShareLite::VERSION eq '0.17';

my $LIMIT = 10 * 1024;    # kB

sub rss_kb {
  open my $fh, '<', '/proc/self/status' or die "status: $!";
  while ( <$fh> ) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
  die 'no VmRSS';
}

my $t0  = time;
my $key = new_key( 4 );
my $s   = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 0 );
my $v   = 'x' x 100_000;
my ( $base, $max, $bad ) = ( undef, 0, 0 );
for my $i ( 1 .. 20_000 ) {
  substr( $v, 0, 8 ) = sprintf '%08d', $i;
  $s->store( $v );
  my $w = $s->fetch;
  $bad++ unless length( $w ) == 100_000 && substr( $w, 0, 8 ) eq sprintf( '%08d', $i );
  if ( $i == 1000 ) { $base = rss_kb() }
  elsif ( $i > 1000 && $i % 500 == 0 ) {
    my $r = rss_kb();
    $max = $r if $r > $max;
  }
}
my $end = rss_kb();
$max = $end if $end > $max;
is( $bad, 0, '20,000 stores of 100 KB fetched back right' );
note "store/fetch: VmRSS $base kB after warm-up, max $max kB, $end kB at the end";
cmp_ok( $max - $base, '<', $LIMIT, 'store/fetch: VmRSS growth after warm-up < 10 MB' );

# Phase 2: error and waiting paths.
my $id    = shmget( $key, 0, 0 );
my $other = IPC::ShareLite->new( -key => $key );
my ( $base2, $max2, $bad2 ) = ( undef, 0, 0 );
for my $i ( 1 .. 5000 ) {
  $s->store( 'short' );
  shmwrite( $id, pack( 'i', 2**31 - 1 ), 4, 4 ) or die "shmwrite: $!";
  $bad2++ if eval { $s->fetch; 1 };
  $bad2++ unless $@ =~ /IPC::ShareLite fetch\(\) error/;
  $s->store( 'y' x ( 3 * 65520 + 1 ) );
  $s->store( 'z' );
  $other->lock( LOCK_EX ) or $bad2++;
  $bad2++ unless $s->lock( LOCK_EX | LOCK_NB ) == 0;
  $bad2++ if $i % 10 == 0 && $s->lock( LOCK_SH, 0.001 ) != 0;
  $other->unlock;
  my $h = IPC::ShareLite->new( -key => $key );
  $bad2++ unless $h->fetch eq 'z';
  undef $h;
  if ( $i == 500 ) { $base2 = rss_kb() }
  elsif ( $i > 500 && $i % 250 == 0 ) {
    my $r = rss_kb();
    $max2 = $r if $r > $max2;
  }
}
is( $bad2, 0, '5,000 rounds of croaking, blocking and growing calls behaved' );
note "error paths: VmRSS $base2 kB after warm-up, max $max2 kB";
cmp_ok( $max2 - $base2, '<', $LIMIT, 'error paths: VmRSS growth after warm-up < 10 MB' );

undef $other;
$s->remove;
undef $s;
note sprintf( 'runtime %.1f s', time - $t0 );
no_leaks_ok();
done_testing;
