#!/usr/bin/perl
# Shares a hash between processes: the hash lives in one share, serialized
# with Storable (freeze/thaw) and then, when JSON::PP is installed, as JSON.
# N forked workers each add their keys one at a time under the exclusive lock
# (fetch, decode, add, encode, store) and count their updates; the parent
# prints the merged hash and checks that no key and no update was lost.
#   perl -Mblib examples/shared-hash.pl [workers] [keys-per-worker]
use strict;
use warnings;
use IPC::ShareLite qw( :lock );
use Storable qw( freeze thaw );
use Time::HiRes qw( sleep );

my $workers = shift || 3;
my $keys    = shift || 3;

$| = 1;    # no buffered output duplicated by fork

my @codecs = ( [ Storable => \&freeze, \&thaw ] );
if ( eval { require JSON::PP; 1 } ) {
  my $json = JSON::PP->new->utf8->canonical;
  push @codecs, [ JSON => sub { $json->encode( $_[0] ) }, sub { $json->decode( $_[0] ) } ];
}
else {
  print "JSON::PP not installed: JSON skipped\n";
}

# Runs $code on the hash in $share under the exclusive lock and stores it back.
sub update {
  my ( $share, $codec, $code ) = @_;
  my ( undef, $encode, $decode ) = @$codec;
  $share->lock( LOCK_EX, 10 ) or die "lock: $!\n";
  my $hash = $decode->( $share->fetch );
  $code->( $hash );
  $share->store( $encode->( $hash ) );
  $share->unlock;
}

my $failed = 0;
for my $codec ( @codecs ) {
  my $name = $codec->[0];

  # A private share: only this process and its children can use it.
  my $share = IPC::ShareLite->new( -key => undef, -create => 1, -destroy => 1, -mode => 0600 )
    or die "cannot create share: $!";
  $share->store( $codec->[1]->( { updates => 0 } ) );

  my @pids;
  for my $w ( 1 .. $workers ) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ( !$pid ) {
      for my $k ( 1 .. $keys ) {
        update( $share, $codec, sub { $_[0]{"w$w.k$k"} = "from worker $w"; $_[0]{updates}++ } );
        sleep 0.001;    # let the others in between
      }
      exit 0;
    }
    push @pids, $pid;
  }
  for ( @pids ) {
    waitpid $_, 0;
    $failed++ if $?;
  }

  my $hash = $codec->[2]->( $share->fetch );
  my %want = ( updates => $workers * $keys );
  for my $w ( 1 .. $workers ) { $want{"w$w.k$_"} = "from worker $w" for 1 .. $keys }
  my $ok = keys %$hash == keys %want && !grep { !defined $hash->{$_} || $hash->{$_} ne $want{$_} } keys %want;

  print "$name: merged hash (", length $share->fetch, " bytes in the share):\n";
  print "  $_ => $hash->{$_}\n" for sort keys %$hash;
  printf "%s: %d keys from %d workers, %s\n", $name, keys( %$hash ) - 1, $workers, $ok ? 'ok' : 'WRONG';
  $failed++ unless $ok;
}
exit( $failed ? 1 : 0 );
