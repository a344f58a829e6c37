#!/usr/bin/perl
# Forks N workers that each add 1 to a shared counter M times under the
# exclusive lock, then prints the total (N * M when nothing is lost).
#   perl -Mblib examples/counter.pl [workers] [increments]
use strict;
use warnings;
use IPC::ShareLite qw( :lock );

my $workers    = shift || 4;
my $increments = shift || 1000;

# A private share: the children inherit it through fork.
my $share = IPC::ShareLite->new( -create => 1, -destroy => 1, -mode => 0600 )
  or die "cannot create share: $!";
$share->store( 0 );

my @pids;
for ( 1 .. $workers ) {
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    for ( 1 .. $increments ) {
      $share->lock( LOCK_EX ) or die "lock: $!";
      $share->store( $share->fetch + 1 );
      $share->unlock;
    }
    exit 0;
  }
  push @pids, $pid;
}
waitpid $_, 0 for @pids;

my $total = $share->fetch;
printf "%d workers x %d increments = %d (expected %d)\n", $workers, $increments, $total, $workers * $increments;
exit( $total == $workers * $increments ? 0 : 1 );
