package SLFreshness;

# Readers that must never return a value older than one another process has
# already seen, against writers of both implementations that are killed or
# fail in the middle of stores (issue 21: the unchanged value is checked
# without the lock). Used by t/13-unchanged-fetch.t and
# t/14-unchanged-fetch-limits.t.
#
# Every value carries the time it was stored, taken under the exclusive lock
# (CLOCK_MONOTONIC in ns, 20 digits), so stores are in the order of their
# stamps: "TS<20 digits>:" then a filler made from the stamp, LEN bytes in
# all (at least 4096: the module keeps such values and hands them out again
# unchanged). A reader, before each fetch, reads what every reader has
# recorded (a witness segment, one slot each, written after a fetch
# returned) and afterwards checks that its value is whole, not older than
# any recorded value, and not older than its own last; the empty value (what
# an interrupted store leaves) is passed over.

use strict;
use warnings;
use Exporter qw(import);
use File::Spec ();
use File::Temp ();
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT);
use Time::HiRes qw(time sleep);
use POSIX ();
use SLTest;

our @EXPORT = qw(run_freshness);

my $VALUE = <<'EOC';
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);
sub stamp { sprintf '%020.0f', clock_gettime( CLOCK_MONOTONIC ) * 1e9 }
sub mk {
  my ( $ts, $len ) = @_;
  my $head = "TS$ts:";
  return $head . substr( $ts x ( 2 + int( $len / 20 ) ), 0, $len - length $head );
}
EOC

# ARGV: key, size, length, witness shmid, the counter's offset in it, end
# time, whether a failed store ends the process. Each store is LEN bytes, or
# with LEN 'count' 4096 + the next number of a counter kept in the witness
# segment and bumped under the exclusive lock: then no two stores of the run
# have the same length, whoever makes them, killed or not. With 'fail:N',
# every other store is N bytes longer (too long for the system's limits, so
# that it fails).
my $WRITER = $VALUE . <<'EOC';
use Time::HiRes qw(time usleep);
alarm 60;
my ( $key, $size, $length, $wid, $counter, $end, $exit_on_failure ) = @ARGV;
my $s = IPC::ShareLite->new( -key => $key, -size => $size ) or die "open: $!";
my $stores = 0;
while ( time < $end ) {
  $s->lock( LOCK_EX );
  my $len = $length;
  if ( $length =~ /\A(count|fail:(\d+))\z/ ) {
    shmread( $wid, my $c, $counter, 20 ) or die "counter: $!";
    shmwrite( $wid, sprintf( '%020d', ++$c ), $counter, 20 ) or die "counter: $!";
    $len = 4096 + $c;
    $len += $2 if defined $2 && $c % 2;
  }
  my $ok = eval { $s->store( mk( stamp(), $len ) ); 1 };
  $s->unlock;
  exit 0 if !$ok && $exit_on_failure;
  $stores++ if $ok;
  usleep( int rand 400 );
}
print "stores=$stores\n";
EOC

# ARGV: key, witness shmid, own slot, slots, end time.
my $READER = $VALUE . <<'EOC';
use Time::HiRes qw(time);
alarm 60;
my ( $key, $wid, $slot, $slots, $end ) = @ARGV;
my $s = IPC::ShareLite->new( -key => $key ) or die "open: $!";
my ( $last, $n, $empty, $errors ) = ( '0' x 20, 0, 0, 0 );
sub bad { print "VIOLATION: @_\n"; exit 1 }
# The latest value every reader recorded. A slot is its stamp twice: shmread
# and shmwrite copy with memcpy, so a read racing a write can tear a slot, and
# a torn stamp could be any number; a slot whose halves differ is read again.
sub seen {
  for ( 1 .. 1000 ) {
    shmread( $wid, my $w, 0, 40 * $slots ) or die "witness: $!";
    my @slot = unpack '(A40)*', $w;
    next if grep { substr( $_, 0, 20 ) ne substr( $_, 20 ) } @slot;
    return ( sort { $b cmp $a } map { substr $_, 0, 20 } @slot )[0];
  }
  die "witness: torn for ever\n";
}
# Until the end, and at least 100 values (a slow machine may start a reader
# late: the share holds a value of this form from the start).
while ( time < $end || $n < 100 ) {
  my $seen = seen();
  my $v = eval { $s->fetch };
  unless ( defined $v ) { $errors++; next }
  if ( $v eq '' ) { $empty++; next }
  my ( $ts ) = $v =~ /\ATS(\d{20}):/ or bad( 'a value of unknown form: ' . substr( $v, 0, 30 ) );
  $v eq mk( $ts, length $v ) or bad( "value $ts is not whole" );
  bad( "value $ts is older than $seen, which a reader had already seen" ) if $ts lt $seen;
  bad( "value $ts is older than $last, which this reader had already seen" ) if $ts lt $last;
  $last = $ts;
  shmwrite( $wid, $ts . $ts, 40 * $slot, 40 ) or die "witness: $!";
  $n++;
}
print "fetches=$n empty=$empty errors=$errors\n";
EOC

# The value maker, here too: the parent stores the first value.
eval "$VALUE; 1" or die $@;

# Runs readers of ours against writers for $opt{seconds} on the share at
# $opt{key} (segments of $opt{size} bytes; $opt{share}, a handle on it, stores
# the first value): $opt{writers} is a list of
# [ impl, length (a number or 'count', see $WRITER), killed (0/1),
# exit_on_failure (0/1) ]; killed writers are SIGKILLed at random moments
# (every 2-20 ms) and started again.
# Returns { readers => [ [ rc, output ] ... ], writers => N started,
# kills => N }.
sub run_freshness {
  my %opt    = @_;
  my $nread  = $opt{readers} || 2;
  my $end    = time + $opt{seconds};
  my $bytes  = 40 * $nread + 20;    # the readers' slots, then the writers' counter
  my $wid    = shmget( IPC_PRIVATE, $bytes, 0600 | IPC_CREAT ) // die "witness: $!";
  own_shm( $wid );
  shmwrite( $wid, '0' x $bytes, 0, $bytes ) or die "witness: $!";
  my %res = ( readers => [], writers => 0, kills => 0 );
  $opt{share}->store( mk( stamp(), 5000 ) );
  my @out;
  my @readers = map {
    my ( undef, $file ) = File::Temp::tempfile( 'slfresh.XXXXXX', TMPDIR => 1 );
    push @out, $file;
    spawn_impl( 'ours', { stdout => $file }, $READER, $opt{key}, $wid, $_, $nread, $end );
  } 0 .. $nread - 1;
  my @w = map { { spec => $_, pid => undef } } @{ $opt{writers} };
  my $start = sub {
    my $w = shift;
    my ( $impl, $length, undef, $exit_on_failure ) = @{ $w->{spec} };
    $w->{pid} = spawn_impl( $impl, { stdout => File::Spec->devnull }, $WRITER, $opt{key}, $opt{size}, $length, $wid,
      40 * $nread, $end, $exit_on_failure ? 1 : 0 );
    $res{writers}++;
  };
  $start->( $_ ) for @w;
  while ( time < $end ) {
    sleep( 0.002 + rand 0.018 );
    for my $w ( @w ) {
      my $done = waitpid( $w->{pid}, POSIX::WNOHANG() ) > 0;
      if ( !$done && $w->{spec}[2] && rand() < 0.5 ) {
        kill 'KILL', $w->{pid};
        waitpid( $w->{pid}, 0 );
        $res{kills}++;
        $done = 1;
      }
      $start->( $w ) if $done && time < $end - 0.05;
    }
  }
  waitpid( $_->{pid}, 0 ) for @w;
  for my $i ( 0 .. $#readers ) {
    my $rc = wait_child( $readers[$i] );
    open my $fh, '<', $out[$i] or die;
    local $/;
    my $text = <$fh> // '';
    unlink $out[$i];
    push @{ $res{readers} }, [ $rc, $text ];
  }
  shmctl( $wid, IPC::SysV::IPC_RMID(), 0 );
  return \%res;
}

1;
