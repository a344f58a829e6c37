#!/usr/bin/perl
# A Perl script and a Rust program talk through one share. This script creates
# the share at a key derived from its pid, starts the Rust example
# rust-core/examples/exchange.rs (built with `cargo build --release --example
# exchange` when target/release/examples/exchange is missing), which stores a
# message there and waits for a reply; it fetches the message, stores its
# reply, prints both sides' messages and removes the share.
#   perl -Mblib examples/perl-and-rust.pl
use strict;
use warnings;
use Cwd qw( abs_path getcwd );
use File::Basename qw( dirname );
use IPC::ShareLite qw( :lock );
use POSIX qw( WNOHANG );
use Time::HiRes qw( sleep time );

my $root    = dirname( dirname( abs_path( __FILE__ ) ) );
my $target  = $ENV{CARGO_TARGET_DIR} || "$root/target";
my $exe     = "$target/release/examples/exchange";
my $timeout = 15;    # seconds either side waits for the other

$| = 1;

unless ( -x $exe ) {
  print "building the Rust example: cargo build --release --example exchange\n";
  my $cwd = getcwd;
  chdir $root or die "chdir $root: $!";
  system( $ENV{CARGO} || 'cargo', qw( build --release --example exchange ) ) == 0
    or die "cargo build failed\n";
  chdir $cwd;
  -x $exe or die "$exe was not built\n";
}

# Not in the range the test suite uses, and different for every run.
my $key = 0x6C000000 + ( $$ & 0xFFFFFF );
printf "key 0x%08x\n", $key;

my $share = IPC::ShareLite->new( -key => $key, -create => 1, -exclusive => 1, -destroy => 1, -mode => 0600 )
  or die "cannot create share: $!";
my $before = $share->version;

my $pid = open( my $from_rust, '-|', $exe, $key, "hello from rust", $timeout ) or die "cannot start $exe: $!";

# Wait for the Rust side's store.
my $deadline = time + $timeout;
while ( $share->version == $before ) {
  if ( waitpid( $pid, WNOHANG ) == $pid ) { die "exchange exited early (status $?)\n" }
  die "no message from the Rust side within $timeout s\n" if time > $deadline;
  sleep 0.01;
}
$share->lock( LOCK_SH, $timeout ) or die "lock: $!";
my $message = $share->fetch;
$share->unlock;
print "rust -> perl: $message\n";

my $reply = "hello from perl (pid $$)";
$share->store( $reply );
print "perl -> rust: $reply\n";

# The Rust side prints what it fetched, then exits.
my $echo = <$from_rust>;
close $from_rust;
my $status = $?;
chomp( $echo = defined $echo ? $echo : '' );
print "rust fetched: $echo\n";

$share->remove;
printf "share 0x%08x removed\n", $key;

my $ok = $status == 0 && $message eq 'hello from rust' && $echo eq $reply;
print $ok ? "ok\n" : "FAILED (exchange exit status $status)\n";
exit( $ok ? 0 : 1 );
