package SLTest;

# Shared helpers for the test suite: keys of our own, the reference 0.17
# implementation, child processes of either implementation, and cleanup of
# every SysV object a test file (or its children) created.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use IPC::SysV qw(IPC_RMID IPC_PRIVATE);
use POSIX ();
use Exporter ();
our @ISA = ('Exporter');

our @EXPORT = qw(
  new_key key_block root_dir ref_lib have_ref need_ref impl_under_test
  perl_cmd run_impl spawn_impl wait_child chain_shmids purge_key
  leaked_objects no_leaks_ok note_pid impls other_impl proc_rows
  timed sem_counts watchdog
);

my $ROOT = abs_path( File::Spec->catdir( dirname( __FILE__ ), '..', '..' ) );
my $MAIN_PID = $$;
my $BLOCK    = 0x20000000 + ( $$ & 0x3FFFFF ) * 256;
my $NEXT     = 0;
my %PIDS     = ( $$ => 1 );

sub root_dir { $ROOT }

# The base of this test file's block of 256 keys.
sub key_block { $BLOCK }

# A fresh key in this test file's block. $span keys are reserved after it
# (0.17 chains extra segments at key+1, key+2, ...).
sub new_key {
  my $span = shift || 32;
  die "key block exhausted" if $NEXT + $span > 256;
  my $key = $BLOCK + $NEXT;
  $NEXT += $span;
  return $key;
}

# The reference for this perl: the 0.17 t/tools/fetch-ref built for it, or
# Debian's binary one if that loads into it (only into Debian's own perl).
my ( $REF_DONE, $REF_LIB, $REF_WHY );

sub ref_lib {
  return $ENV{SHARELITE_REF_LIB} if $ENV{SHARELITE_REF_LIB};
  return $REF_LIB if $REF_DONE;
  $REF_DONE = 1;
  require Config;
  my $built = "$ROOT/.ref/0.17-$Config::Config{archname}-$Config::Config{version}/lib";
  return $REF_LIB = $built if -f "$built/IPC/ShareLite.pm";
  my ( $pm ) = glob( "$ROOT/.ref/0.17/usr/lib/*/perl5/*/IPC/ShareLite.pm" );
  unless ( $pm && -f $pm ) { $REF_WHY = 'not unpacked'; return undef }
  my $lib = dirname( dirname( $pm ) );
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  unless ( $pid ) {
    open STDERR, '>', File::Spec->devnull;
    exec( $^X, "-I$lib", '-e', 'require IPC::ShareLite' ) or POSIX::_exit( 127 );
  }
  waitpid( $pid, 0 );
  if ( $? ) { $REF_WHY = "in .ref/0.17 does not load into $^X"; return undef }
  return $REF_LIB = $lib;
}

sub have_ref { defined ref_lib() }

# Skip the whole file without the reference, unless CI demands it.
sub need_ref {
  return 1 if have_ref();
  if ( $ENV{SHARELITE_REQUIRE_REF} ) {
    print "Bail out! reference IPC::ShareLite 0.17 $REF_WHY (run PERL=$^X t/tools/fetch-ref)\n";
    exit 255;
  }
  print "1..0 # SKIP reference IPC::ShareLite 0.17 $REF_WHY (PERL=$^X t/tools/fetch-ref)\n";
  exit 0;
}

# 'ours' normally; SHARELITE_TEST_IMPL=orig runs the in-process tests against
# the reference module, to check the tests themselves.
sub impl_under_test { $ENV{SHARELITE_TEST_IMPL} || 'ours' }

sub impls { ( 'ours', 'orig' ) }
sub other_impl { $_[0] eq 'ours' ? 'orig' : 'ours' }

sub _inc_for {
  my $impl = shift;
  if ( $impl eq 'orig' ) {
    my $lib = ref_lib() or die "reference 0.17 not available";
    return ( "-I$lib", "-I$ROOT/t/lib" );
  }
  return ( "-I$ROOT/blib/arch", "-I$ROOT/blib/lib", "-I$ROOT/t/lib" );
}

# The command (list) that runs perl with one implementation first in @INC.
sub perl_cmd {
  my $impl = shift;
  return ( $^X, _inc_for( $impl ) );
}

sub import {
  if ( impl_under_test() eq 'orig' ) {
    my $lib = ref_lib() or die "SHARELITE_TEST_IMPL=orig needs t/tools/fetch-ref";
    unshift @INC, $lib;
  }
  __PACKAGE__->export_to_level( 1, @_ );
}

# Start perl running $code with implementation $impl; @args go to @ARGV.
# An optional hash ref after $impl takes { stdout => FILE }.
# The child checks it loaded the implementation asked for. Returns the pid.
sub spawn_impl {
  my $impl = shift;
  my %opt  = ref( $_[0] ) eq 'HASH' ? %{ shift() } : ();
  my ( $code, @args ) = @_;
  my $want = $impl eq 'orig' ? q{$IPC::ShareLite::VERSION eq '0.17'} : q{$IPC::ShareLite::VERSION ne '0.17'};
  my $prelude = "use strict; use warnings; use IPC::ShareLite qw(:all); die 'wrong implementation loaded' unless $want;\n";
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    delete $ENV{PERL5LIB};
    delete $ENV{PERLLIB};
    if ( defined $opt{stdout} ) {
      open STDOUT, '>', $opt{stdout} or POSIX::_exit( 97 );
    }
    exec( perl_cmd( $impl ), '-e', $prelude . $code, @args ) or POSIX::_exit( 98 );
  }
  $PIDS{$pid} = 1;
  return $pid;
}

# Wait for a child; returns its exit code (or 128+signal).
sub wait_child {
  my $pid = shift;
  waitpid( $pid, 0 );
  my $st = $?;
  return 128 + ( $st & 127 ) if $st & 127;
  return $st >> 8;
}

# Run $code in a child of implementation $impl; returns (exit code, stdout).
sub run_impl {
  my ( $impl, $code, @args ) = @_;
  my $out = File::Spec->catfile( File::Spec->tmpdir, "sltest.$$." . int( rand 1e9 ) );
  my $pid = spawn_impl( $impl, { stdout => $out }, $code, @args );
  my $rc  = wait_child( $pid );
  my $text = '';
  if ( open my $fh, '<', $out ) {
    local $/;
    $text = <$fh>;
    close $fh;
  }
  unlink $out;
  return wantarray ? ( $rc, $text ) : $text;
}

# Record a pid (e.g. of a plain fork) whose segments count as ours.
sub note_pid { $PIDS{ $_[0] } = 1 }

# The shmids of the chain whose head has key $key (bounded, cycle-safe).
sub chain_shmids {
  my $key = shift;
  my $id  = shmget( $key, 0, 0 );
  return () unless defined $id;
  my ( @ids, %seen );
  while ( defined $id && $id >= 0 && !$seen{$id}++ && @ids < 100_000 ) {
    push @ids, $id;
    my $buf;
    last unless shmread( $id, $buf, 0, 4 );
    $id = unpack 'i', $buf;
  }
  return @ids;
}

# Remove the share at $key: every segment of its chain and its semaphore set.
sub purge_key {
  my $key = shift;
  shmctl( $_, IPC_RMID, 0 ) for chain_shmids( $key );
  my $sid = semget( $key, 0, 0 );
  semctl( $sid, 0, IPC_RMID, 0 ) if defined $sid;
}

# Runs $code, dying with "timeout\n" when it takes more than $secs seconds:
# a test that would hang fails instead. Returns what $code returns.
sub timed {
  my ( $secs, $code ) = @_;
  my @r;
  my $ok = eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm $secs;
    @r = $code->();
    alarm 0;
    1;
  };
  alarm 0;
  die $@ unless $ok;
  return wantarray ? @r : $r[0];
}

# Whatever happens, the test file ends within $limit seconds: a forked
# watchdog SIGKILLs it then (and goes away with it, or at its END).
my $WATCHDOG;
sub watchdog {
  my $limit = shift;
  my $main  = $$;
  my $pid   = fork;
  if ( defined $pid && !$pid ) {
    for ( 1 .. $limit ) { sleep 1; POSIX::_exit( 0 ) if getppid != $main }
    print STDERR "# watchdog: killing $0 after ${limit}s\n";
    kill 'KILL', $main;
    POSIX::_exit( 0 );
  }
  $WATCHDOG = $pid;
  return $pid;
}

# (readers, writers): semaphores 1 and 2 of the set at $key ('nosem' when
# there is none, 'err' for one that cannot be read).
sub sem_counts {
  my $key = shift;
  my $id  = semget( $key, 0, 0 );
  return ( 'nosem', 'nosem' ) unless defined $id;
  return map { my $v = semctl( $id, $_, IPC::SysV::GETVAL(), 0 ); defined $v ? 0 + $v : 'err' } 1, 2;
}

# Rows of a /proc/sysvipc table ('shm', 'sem' or a path), each a hash keyed
# by the header's columns.
sub proc_rows {
  my $file = shift;
  $file = "/proc/sysvipc/$file" unless $file =~ m{/};
  open my $fh, '<', $file or return ();
  my $head = <$fh>;
  my @cols = split ' ', $head;
  my @rows;
  local $_;
  while ( <$fh> ) {
    my @f = split ' ';
    my %r;
    @r{@cols} = @f;
    push @rows, \%r;
  }
  return @rows;
}

# SysV objects left behind by this test file: anything keyed in our block,
# and any segment created by one of our processes.
sub leaked_objects {
  my @left;
  for my $r ( proc_rows( '/proc/sysvipc/shm' ) ) {
    my $k = $r->{key};
    if ( ( $k >= $BLOCK && $k < $BLOCK + 256 ) || ( $r->{cpid} && $PIDS{ $r->{cpid} } ) ) {
      push @left, "shm key=$k shmid=$r->{shmid} cpid=$r->{cpid}";
    }
  }
  for my $r ( proc_rows( '/proc/sysvipc/sem' ) ) {
    my $k = $r->{key};
    push @left, "sem key=$k semid=$r->{semid}" if $k >= $BLOCK && $k < $BLOCK + 256;
  }
  return @left;
}

sub no_leaks_ok {
  my $name = shift || 'no SysV object left behind';
  my @left = leaked_objects();
  my $tb   = Test::More->builder;
  $tb->ok( !@left, $name ) or $tb->diag( join "\n", @left );
}

sub _purge_all {
  purge_key( $BLOCK + $_ ) for 0 .. 255;
  for my $r ( proc_rows( '/proc/sysvipc/shm' ) ) {
    shmctl( $r->{shmid}, IPC_RMID, 0 ) if $r->{cpid} && $PIDS{ $r->{cpid} };
  }
}

# A previous run with a recycled pid may have left objects in our block.
_purge_all();

END {
  if ( $$ == $MAIN_PID ) {
    my $st = $?;
    if ( $WATCHDOG ) { kill 'KILL', $WATCHDOG; waitpid $WATCHDOG, 0 }
    _purge_all();
    $? = $st;
  }
}

1;
