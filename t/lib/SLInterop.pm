package SLInterop;

# Helpers for the interoperability tests (t/10-12): "agents" (long-lived child
# perls of one implementation that run snippets sent by the test process through
# files), bounded waits, and read-only inspection of the SysV objects behind a
# key. The test process only coordinates; every share access happens in a child.
#
# SHARELITE_INTEROP_SELFTEST=1 maps 'ours' to 'orig' (0.17 on both sides), to
# check the tests themselves before our module is built.

use strict;
use warnings;
use File::Temp ();
use IPC::SysV qw(GETVAL);
use POSIX qw(WNOHANG);
use Time::HiRes ();
use SLTest ();    # (loads IPC::ShareLite::Inspect)
use SLInterop::Child ();
use Exporter ();
our @ISA    = ('Exporter');
our @EXPORT = qw(
  selftest real_impl directions agent spawn_child wait_bounded wait_for_files
  tmp_dir put_file reap_agents sem_values shm_sizes share_gone nsegs child_lib
);

# Seconds every wait loop waits at most: the children's ($SLInterop::Child).
our $WAIT_CAP = $SLInterop::Child::WAIT_CAP;

sub selftest { $ENV{SHARELITE_INTEROP_SELFTEST} ? 1 : 0 }

# The implementation a child really loads.
sub real_impl { my $i = shift; return selftest() && $i eq 'ours' ? 'orig' : $i }

# [creator/first side, other side] in both directions.
sub directions { return ( [ 'ours', 'orig' ], [ 'orig', 'ours' ] ) }

# Segments needed for $len bytes with segment size $size.
sub nsegs { return SLTest::nsegs( @_ ) }

sub tmp_dir {
  my $d = File::Temp::tempdir( 'slinterop.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
  return $d;
}

*put_file = \&SLInterop::Child::put_file;

# Code prepended to every child: it loads the child library (value maker,
# bounded file waits, opening) from t/lib/SLInterop/Child.pm, which the
# children find through the -I of SLTest::perl_cmd.
our $CHILD_LIB = "use SLInterop::Child;\n";

sub child_lib { $CHILD_LIB }

my $AGENT_LOOP = <<'EOC';
my $dir  = shift @ARGV;
my $ppid = getppid;
open STDOUT, '>>', "$dir/stdout" or die;
open STDERR, '>>', "$dir/stderr" or die;
our $S;
my $n = 0;
while ( 1 ) {
  my $f   = "$dir/cmd.$n";
  my $end = time + $WAIT_CAP;
  until ( -e $f ) {
    exit 3 if time > $end || getppid != $ppid;
    sleep 0.002;
  }
  my $code = do { local ( @ARGV, $/ ) = ( $f ); <> };
  if ( $code eq 'EXIT' ) { put_file( "$dir/res.$n", "ok" ); last }
  my @r   = eval $code;
  my $out = $@ ? "err\t$@" : join( "\t", 'ok', map { defined $_ ? $_ : '<undef>' } @r );
  put_file( "$dir/res.$n", $out );
  $n++;
}
undef $S;
exit 0;
EOC

# Start a child of $impl running child_lib . $code; returns its pid.
sub spawn_child {
  my ( $impl, $opt, $code, @args ) = @_;
  return SLTest::spawn_impl( real_impl( $impl ), $opt, $CHILD_LIB . $code, @args );
}

# Wait at most $cap seconds for $pid; returns its exit code (128+signal), or
# undef after killing it with SIGKILL when it did not end in time.
sub wait_bounded {
  my ( $pid, $cap ) = @_;
  my $end = Time::HiRes::time() + ( $cap || $WAIT_CAP );
  while ( 1 ) {
    my $w = waitpid( $pid, WNOHANG );
    if ( $w == $pid || $w < 0 ) {
      my $st = $?;
      return 128 + ( $st & 127 ) if $st & 127;
      return $st >> 8;
    }
    if ( Time::HiRes::time() > $end ) {
      kill 'KILL', $pid;
      waitpid( $pid, 0 );
      return undef;
    }
    Time::HiRes::sleep( 0.01 );
  }
}

# Wait at most $cap seconds until every file exists; true if they all do.
sub wait_for_files {
  my ( $cap, @files ) = @_;
  my $end = Time::HiRes::time() + ( $cap || $WAIT_CAP );
  while ( grep { !-e $_ } @files ) {
    return 0 if Time::HiRes::time() > $end;
    Time::HiRes::sleep( 0.005 );
  }
  return 1;
}

# (sem[0], sem[1], sem[2]) of the share at $key, or () without a set.
sub sem_values {
  my $key = shift;
  my $id  = semget( $key, 0, 0 );
  return () unless defined $id;
  return map { 0 + semctl( $id, $_, GETVAL, 0 ) } 0 .. 2;
}

# shmid => segment size, for every segment in the system (its listing).
sub shm_sizes { return map { $_->{id} => $_->{size} } SLTest::sysv_segments() }

# True when nothing is left of the share at $key: no head, no semaphore set,
# and none of the @shmids (its chain seen earlier) exists any more.
sub share_gone {
  my ( $key, @shmids ) = @_;
  return 0 if defined shmget( $key, 0, 0 );
  return 0 if defined semget( $key, 0, 0 );
  my %size = shm_sizes();
  return !grep { exists $size{$_} } @shmids;
}

sub agent { return SLInterop::Agent->new( @_ ) }

my %LIVE;

# SIGKILL and reap every agent still running (after a failed scenario).
sub reap_agents {
  $_->kill9 for values %LIVE;
}

END {
  for my $ag ( values %LIVE ) {
    next if defined $ag->{status};
    kill "KILL", $ag->{pid};
    waitpid( $ag->{pid}, 0 );
  }
}

package SLInterop::Agent;

use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

# An agent: a child perl of implementation $impl that runs perl snippets sent
# by call()/send(). Snippets share `our $S` (the share handle) and see the
# child library (mk, open_share, md5_hex, time, ...).
sub new {
  my ( $class, $impl, $name ) = @_;
  my $dir = SLInterop::tmp_dir();
  my $pid = SLInterop::spawn_child( $impl, {}, $AGENT_LOOP, $dir );
  my $self = bless {
    impl => $impl,
    real => SLInterop::real_impl( $impl ),
    name => ( $name || $impl ) . "[$pid]",
    dir  => $dir,
    pid  => $pid,
    n    => 0,
    cmds => [],
  }, $class;
  $LIVE{$pid} = $self;
  return $self;
}

sub name { $_[0]{name} }
sub impl { $_[0]{impl} }
sub real { $_[0]{real} }
sub pid  { $_[0]{pid} }

# Send a snippet without waiting; returns its number.
sub send {
  my ( $self, $code ) = @_;
  my $n = $self->{n}++;
  $self->{cmds}[$n] = $code;
  SLInterop::put_file( "$self->{dir}/cmd.$n", $code );
  return $n;
}

# Has snippet $n answered?
sub ready { -e "$_[0]{dir}/res.$_[1]" }

sub _reap {
  my $self = shift;
  return 1 if defined $self->{status};
  my $w = waitpid( $self->{pid}, WNOHANG );
  if ( $w == $self->{pid} || $w < 0 ) {
    $self->{status} = $?;
    return 1;
  }
  return 0;
}

# The answer of snippet $n (list of fields), waiting at most $cap seconds.
# Dies when the snippet died, the agent died or the wait timed out.
sub result {
  my ( $self, $n, $cap ) = @_;
  $cap ||= $SLInterop::WAIT_CAP;
  my $f   = "$self->{dir}/res.$n";
  my $end = time + $cap;
  my $code = $self->{cmds}[$n];
  until ( -e $f ) {
    if ( $self->_reap && !-e $f ) {
      die "$self->{name}: agent exited (wait status $self->{status}) before answering: $code\n";
    }
    die "$self->{name}: no answer within ${cap}s to: $code\n" if time > $end;
    sleep 0.002;
  }
  my $text = do { local ( @ARGV, $/ ) = ( $f ); <> };
  my ( $st, @f ) = split /\t/, $text, -1;
  die "$self->{name}: died running [$code]: " . join( "\t", @f ) if $st ne 'ok';
  @f = map { $_ eq '<undef>' ? undef : $_ } @f;
  return wantarray ? @f : $f[0];
}

sub call {
  my ( $self, $code ) = @_;
  return $self->result( $self->send( $code ) );
}

# Let the agent exit normally (dropping its handle); returns its exit code.
sub finish {
  my $self = shift;
  return $self->{status} >> 8 if $self->_reap;
  my $n = $self->send( 'EXIT' );
  my $acked = eval { $self->result( $n ); 1 };
  my $rc = SLInterop::wait_bounded( $self->{pid} );
  # 255 is what wait_bounded makes of waitpid's -1 (no such child: reaped
  # already). An agent that acknowledged EXIT got to its clean exit.
  $rc = 0 if defined $rc && $rc == 255 && $acked && $! == POSIX::ECHILD();
  $self->{status} = defined $rc ? $rc << 8 : 9;
  delete $LIVE{ $self->{pid} };
  if ( !defined $rc || $rc != 0 ) {
    # Say why, in the test's output: what the agent printed on stderr.
    if ( open my $fh, '<', "$self->{dir}/stderr" ) {
      local $/;
      my $err = <$fh>;
      Test::More::diag( "$self->{name} stderr: $err" ) if defined $err && length $err;
    }
  }
  return $rc;
}

sub kill9 {
  my $self = shift;
  unless ( $self->_reap ) {
    kill "KILL", $self->{pid};
    waitpid( $self->{pid}, 0 );
    $self->{status} = $?;
  }
  delete $LIVE{ $self->{pid} };
}

1;
