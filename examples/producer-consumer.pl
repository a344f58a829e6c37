#!/usr/bin/perl
# One producer (this process) passes a sequence of messages to N forked
# consumers through one share. The value is "SEQ ACKS\nTEXT": the producer
# stores message SEQ with no acknowledgements, every consumer reads it and adds
# its number to ACKS under LOCK_EX, and only when all N have acknowledged does
# the producer store the next one (SEQ 0 ends the run). Each consumer prints
# what it got and checks that it saw every message once, in order.
#   perl -Mblib examples/producer-consumer.pl [consumers] [messages]
use strict;
use warnings;
use IPC::ShareLite qw( :lock );
use Time::HiRes qw( sleep time );

my $consumers = shift || 3;
my $messages  = shift || 5;
my $timeout   = 10;      # seconds any one wait may take before giving up
my $poll      = 0.005;   # seconds between two looks at the share

$| = 1;    # no buffered output duplicated by fork

sub text_of { my $seq = shift; return "message $seq of $messages" }

sub encode {
  my ( $seq, $acks, $text ) = @_;
  return sprintf "%d %s\n%s", $seq, ( @$acks ? join( ',', @$acks ) : '-' ), $text;
}

sub decode {
  my ( $head, $text ) = split /\n/, shift, 2;
  my ( $seq, $acks ) = split ' ', $head;
  return ( $seq, [ $acks eq '-' ? () : split /,/, $acks ], $text );
}

# A private share: only this process and its children can use it.
my $share = IPC::ShareLite->new( -key => undef, -create => 1, -destroy => 1, -mode => 0600 )
  or die "cannot create share: $!";
$share->store( encode( -1, [], '' ) );    # nothing sent yet

sub consume {
  my $id = shift;
  my ( $last, $seen_version, @got ) = ( 0, 0 );
  my $deadline = time + $timeout;
  while ( time < $deadline ) {
    my $version = $share->version;
    defined $version or die "consumer $id: version: $!\n";
    if ( $version == $seen_version ) { sleep $poll; next }
    $seen_version = $version;

    $share->lock( LOCK_EX, $timeout ) or die "consumer $id: lock: $!\n";
    my ( $seq, $acks, $text ) = decode( $share->fetch );
    if ( $seq == 0 ) {    # the end
      $share->unlock;
      my $ok = @got == $messages && !grep { $got[ $_ - 1 ] ne text_of( $_ ) } 1 .. $messages;
      print "consumer $id: ", ( $ok ? "got all $messages messages once, in order" : "got only @{[ scalar @got ]} of $messages messages" ), "\n";
      return $ok ? 0 : 1;
    }
    if ( $seq > $last ) {
      if ( $seq != $last + 1 || grep { $_ == $id } @$acks ) {
        $share->unlock;
        print "consumer $id: expected message ", $last + 1, ", got $seq\n";
        return 1;
      }
      print "consumer $id <- $text\n";
      push @got, $text;
      $last = $seq;
      $share->store( encode( $seq, [ @$acks, $id ], $text ) );
      $seen_version = $share->version;    # not woken up by our own store
      $deadline     = time + $timeout;
    }
    $share->unlock;
  }
  print "consumer $id: timed out after message $last\n";
  return 1;
}

my @pids;
for my $id ( 1 .. $consumers ) {
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  exit consume( $id ) unless $pid;
  push @pids, $pid;
}

# Stores message $seq (0: the end) with no acknowledgements yet.
sub send_message {
  my ( $seq, $text ) = @_;
  $share->lock( LOCK_EX, $timeout ) or die "producer: lock: $!\n";
  $share->store( encode( $seq, [], $text ) );
  $share->unlock;
}

# Waits until every consumer acknowledged message $seq.
sub all_acknowledged {
  my $seq      = shift;
  my $deadline = time + $timeout;
  while ( time < $deadline ) {
    $share->lock( LOCK_SH, $timeout ) or die "producer: lock: $!\n";
    my ( $now, $acks ) = decode( $share->fetch );
    $share->unlock;
    return 1 if $now == $seq && @$acks == $consumers;
    sleep $poll;
  }
  return 0;
}

my $sent = 0;
for my $seq ( 1 .. $messages ) {
  send_message( $seq, text_of( $seq ) );
  unless ( all_acknowledged( $seq ) ) {
    print "producer: message $seq was not acknowledged by all $consumers consumers\n";
    last;
  }
  $sent++;
}
send_message( 0, '' );

my $failed = 0;
for my $pid ( @pids ) {
  waitpid $pid, 0;
  $failed++ if $?;
}
printf "producer: %d of %d messages acknowledged by all %d consumers\n", $sent, $messages, $consumers;
if ( $failed || $sent != $messages ) {
  print "FAILED: $failed consumer(s) reported a problem\n";
  exit 1;
}
print "all $consumers consumers got all $messages messages once, in order\n";
exit 0;
