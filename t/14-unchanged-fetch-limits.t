# As t/13-unchanged-fetch.t, with stores that fail: in a private IPC
# namespace whose segment limit (kernel.shmmni) leaves room for a few more
# segments, writers of both implementations alternate values that fit with
# values 200 segments long, which fail part way (0.17 empties the value
# first; ours fails before touching it). No reader of ours may return a
# value older than one another reader has seen, nor go back in time, nor a
# torn value; afterwards the share works and no lock is held. Skipped where
# no private namespace can be had, or its limit cannot be set.

use strict;
use warnings;
use lib 't/lib';
use SLPrivateIPC;
use SLTest;
use SLFreshness;
use Test::More;
use IPC::ShareLite qw(:lock);

my $f = '/proc/sys/kernel/shmmni';
open my $fh, '<', $f or plan skip_all => "$f: $!";
chomp( my $old = <$fh> );
close $fh;

my $key = 4646;
my $s = IPC::ShareLite->new( -key => $key, -create => 1, -size => 4096, -destroy => 1 ) or die "new: $!";
$s->store( '' );
my $in_use = () = IPC::ShareLite::Inspect::list_segments();
# Room for the witness, the chain of a value that fits, and a few more.
open my $w, '>', $f or plan skip_all => "cannot set $f: $!";
print {$w} $in_use + 8, "\n" or plan skip_all => "cannot set $f: $!";
close $w or plan skip_all => "cannot set $f: $!";

my $other = have_ref() ? 'orig' : 'ours';
my $r = timed( 90, sub {
    run_freshness( share => $s, key => $key, size => 4096, seconds => $ENV{SL_FRESHNESS_SECONDS} || 3, readers => 2,
      writers => [ [ 'ours', 'fail:816000', 0, 0 ], [ $other, 'fail:816000', 0, 1 ] ] );
} );
my @bad = grep { $_->[0] != 0 || $_->[1] !~ /^fetches=\d+ empty=\d+ errors=0$/m } @{ $r->{readers} };
ok( !@bad, 'readers never went back in time, saw no torn value, got no error while stores failed' )
  or diag( join "\n", map { "rc $_->[0]: $_->[1]" } @bad );
my $fetches = 0;
$fetches += ( $_->[1] =~ /fetches=(\d+)/ )[0] // 0 for @{ $r->{readers} };
ok( $fetches > 100, "the readers fetched ($fetches values; $r->{writers} writers started)" );
ok( !eval { $s->store( 'x' x 816_000 ); 1 }, 'a value past the limit still fails' );
ok( eval { $s->store( 'last' ); $s->fetch eq 'last' }, 'the share works after the run' ) or diag $@;
is( $s->lock( LOCK_EX | LOCK_NB ), 1, 'no lock is left held' );
$s->unlock;

open $w, '>', $f and print {$w} "$old\n";
done_testing;
