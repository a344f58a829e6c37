package SLTest;

# Shared helpers for the test suite: keys of our own, the reference 0.17
# implementation, child processes of either implementation, and cleanup of
# the SysV objects a test file (or its children) created.
#
# Other programs on the host may use SysV IPC: a test never removes, and
# never counts as its own, an object it did not make. new_key() hands out
# keys that were free when handed out (a key..key+span with no segment and no
# semaphore set); what a test makes at those keys is recorded by id (adopt(),
# done by chain_shmids, sem_counts, purge_key, the leak check and END), along
# with the chain hanging from each such head, and any id given to own_shm /
# own_sem. Cleanup and the leak check go by those ids only.

use strict;
use warnings;
use Cwd qw(abs_path);
use Digest::MD5 ();
use Errno ();
use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();
use IPC::SysV qw(IPC_RMID IPC_PRIVATE);
use POSIX ();
use Exporter ();
our @ISA = ('Exporter');

our @EXPORT = qw(
  new_key root_dir ref_lib have_ref need_ref impl_under_test
  perl_cmd run_impl spawn_impl wait_child chain_shmids purge_key
  leaked_objects no_leaks_ok impls other_impl sysv_segments sysv_semaphores
  timed sem_counts watchdog adopt own_shm own_sem key_candidates
  can_switch_to_nobody
);

# On request: rows and modes of single objects, for the tests of new(),
# new() called the two ways those tests call it, and what appeared in ipcs
# while a command ran.
our @EXPORT_OK = qw(shm_row sem_row_by_key perms_of_shm perms_of_sem real_size exists_share new_bounded new_or_diag
  ipc_objects created_since shm_gone header_of no_room_for nsegs attach_limit settled);

my $ROOT     = abs_path( File::Spec->catdir( dirname( __FILE__ ), '..', '..' ) );
my $MAIN_PID = $$;

# The listing of SysV objects and key_in_use: IPC::ShareLite::Inspect (pure
# Perl: from blib, or from lib/ when nothing is built yet).
{
  local @INC = ( @INC, "$ROOT/lib" );
  require IPC::ShareLite::Inspect;
}

sub root_dir { $ROOT }

# True when a child of this process can become uid/gid 65534: real root, not
# the root of a user namespace that maps no other id (as t/40 and
# SLPrivateIPC use when the suite runs as a user). Probed once, in a child.
my $CAN_SWITCH;
sub can_switch_to_nobody {
  return $CAN_SWITCH if defined $CAN_SWITCH;
  return $CAN_SWITCH = 0 if $> != 0;
  my $pid = fork // die "fork: $!";
  unless ( $pid ) {
    local $@;
    eval { $) = "65534 65534"; $> = 65534 };
    POSIX::_exit( $> == 65534 && $) !~ /^0\b/ ? 0 : 1 );
  }
  waitpid( $pid, 0 );
  return $CAN_SWITCH = $? == 0 ? 1 : 0;
}

# --- keys ------------------------------------------------------------------

# Keys are drawn from 0x10000000 .. 0x1FFFFFFF: not a string key of
# printable characters (those have a printable top byte), not a block of
# 0.17-era test suites (0x20000000 + pid*256), never IPC_PRIVATE.
my $KEY_LO    = 0x10000000;
my $KEY_RANGE = 0x0FFFF000;

# SLTEST_KEY_SEED makes the sequence of keys tried reproducible (the
# foreign-objects test seeds objects at them); otherwise each file has its
# own. A digest, not rand(): tests may call srand.
my $SEED = defined $ENV{SLTEST_KEY_SEED} ? $ENV{SLTEST_KEY_SEED} : join ':', $$, time, rand, {} + 0;
my $TRY  = 0;

# The first $n keys new_key tries with seed $seed.
sub key_candidates {
  my ( $seed, $n ) = @_;
  return map { _candidate( $seed, $_ ) } 0 .. $n - 1;
}

sub _candidate {
  my ( $seed, $i ) = @_;
  my $d = unpack 'N', Digest::MD5::md5( "$seed:$i" );
  return $KEY_LO + $d % $KEY_RANGE;
}

my @RESERVED;    # [ key, span ] handed out by new_key

sub _reserved {
  my $k = shift;
  for ( @RESERVED ) { return 1 if $k >= $_->[0] && $k <= $_->[0] + $_->[1] }
  return 0;
}

# A fresh key for one share: key..key+$span hold no segment and no semaphore
# set (0.17 chains extra segments at key+1, key+2, ...), and overlap no key
# handed out before. A taken key is skipped, never touched.
sub new_key {
  my $span = shift || 32;
  for ( 1 .. 10_000 ) {
    my $key = _candidate( $SEED, $TRY++ );
    next if grep { $key <= $_->[0] + $_->[1] && $_->[0] <= $key + $span } @RESERVED;
    next if grep { IPC::ShareLite::Inspect::key_in_use( $key + $_ ) } 0 .. $span;
    push @RESERVED, [ $key, $span ];
    return $key;
  }
  die "new_key: no free key found";
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
# the reference module, to check the tests themselves. Run that in a private
# IPC namespace (unshare --ipc): 0.17 itself makes segments at keys 1, 2, ...
# for private shares and past a test's keys when a header is damaged.
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
  my ( undef, $out ) = File::Temp::tempfile( 'sltest.XXXXXX', TMPDIR => 1 );
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


# --- objects of ours, by id ---------------------------------------------------

my %OWN_SHM;    # shmid => [ key, size ] as first seen
my %OWN_SEM;    # semid => key
my %HEAD;       # shmids of heads whose chains are ours

# --- the system's SysV objects ----------------------------------------------
#
# Tests see the segments and semaphore sets of the system through one path:
# IPC::ShareLite::Inspect's listing, from /proc/sysvipc where it can be read
# (Linux) and from ipcs elsewhere (the BSDs, macOS, Solaris), never from
# /proc directly. Rows as list_segments / list_semaphores give them: id, key
# (a signed key_t), mode (0 .. 0777), size, nattch, cpid, removed (undef
# where the system does not tell), uid, ...

sub sysv_segments   { return IPC::ShareLite::Inspect::list_segments() }
sub sysv_semaphores { return IPC::ShareLite::Inspect::list_semaphores() }

# Every segment, every semaphore set now, by id.
sub _shm_now { return { map { $_->{id} => $_ } sysv_segments() } }
sub _sem_now { return { map { $_->{id} => $_ } sysv_semaphores() } }

# Is the segment $id still the one we recorded (same key and size)? A
# removed segment still attached shows key 0 (IPC_PRIVATE).
sub _still_ours_shm {
  my ( $id, $now ) = @_;
  my $r = $now->{$id} or return 0;
  my ( $key, $size ) = @{ $OWN_SHM{$id} };
  return 0 if $r->{size} != $size;
  return $r->{key} == $key || $r->{key} == 0;
}

sub _still_ours_sem {
  my ( $id, $now ) = @_;
  my $r = $now->{$id} or return 0;
  return $r->{key} == $OWN_SEM{$id};
}

# Record segments as ours (ids the test got back from shmget); returns them.
sub own_shm {
  my $now = _shm_now();
  for my $id ( @_ ) {
    next if !defined $id || $OWN_SHM{$id} || !$now->{$id};
    $OWN_SHM{$id} = [ $now->{$id}{key}, $now->{$id}{size} ];
  }
  return wantarray ? @_ : $_[0];
}

# Record semaphore sets as ours (ids the test got back from semget).
sub own_sem {
  my $now = _sem_now();
  for my $id ( @_ ) {
    next if !defined $id || exists $OWN_SEM{$id} || !$now->{$id};
    $OWN_SEM{$id} = $now->{$id}{key};
  }
  return wantarray ? @_ : $_[0];
}

# How many segments (head included) a value of $len bytes takes in segments
# of $size bytes (doc/FORMAT.md, 3): the tests' own count, which real chains
# must have.
sub nsegs {
  my ( $len, $size ) = @_;
  my $data = $size - 16;
  return $len <= 0 ? 1 : int( ( $len + $data - 1 ) / $data );
}

# The 16-byte header of segment $id (doc/FORMAT.md, 2): next_shmid, length,
# shm_state, version, read with shmread (which attaches for the read); ()
# when it cannot be read.
sub header_of {
  my $buf;
  shmread( shift, $buf, 0, 16 ) or return ();
  return unpack 'l l L L', $buf;
}

# Follow next_shmid from segment $id (cycle-safe): the ids reached whose
# header could be read, $id first.
sub _walk {
  my $id = shift;
  my ( @ids, %seen );
  while ( $id >= 0 && !$seen{$id}++ ) {
    my ( $next ) = header_of( $id ) or last;
    push @ids, $id;
    $id = $next;
  }
  return @ids;
}

# The chain of an owned head: links are followed only to segments that can
# be a chain of ours (IPC_PRIVATE or at a key we hold, the head's size); a
# damaged link to anything else ends the walk there.
sub _own_chain {
  my ( $head, $now ) = @_;
  my @ids = ( $head );
  my $size = $OWN_SHM{$head}[1];
  my ( $first, @rest ) = _walk( $head );
  for my $id ( @rest ) {
    my $r = $now->{$id};
    last unless $r && $r->{size} == $size && ( $r->{key} == 0 || _reserved( $r->{key} ) );
    $OWN_SHM{$id} ||= [ $r->{key}, $r->{size} ];
    push @ids, $id;
  }
  return @ids;
}

# Record what is at $key, a key this file reserved with new_key (free when
# reserved, so made by this test): the head segment and its chain, and the
# semaphore set. Returns the head's chain (ids). Other keys are left alone.
sub adopt {
  my $key = shift;
  return () unless $key && _reserved( $key );
  my $head = shmget( $key, 0, 0 );
  my $now  = defined $head ? _shm_now() : {};
  my @ids;
  if ( defined $head && $now->{$head} ) {
    $OWN_SHM{$head} ||= [ $key, $now->{$head}{size} ];
    $HEAD{$head} = 1;
    @ids = _own_chain( $head, $now );
  }
  my $sid = semget( $key, 0, 0 );
  $OWN_SEM{$sid} = $key if defined $sid && !exists $OWN_SEM{$sid};
  return @ids;
}

# The shmids of the chain whose head has key $key (bounded, cycle-safe); a
# key of ours is adopted on the way.
sub chain_shmids {
  my $key = shift;
  adopt( $key );
  my $id = shmget( $key, 0, 0 );
  return () unless defined $id;
  return _walk( $id );
}

# Remove the share at $key: every segment of its chain and its semaphore
# set, by the ids adopted. A key this file did not reserve is left alone.
sub purge_key {
  my $key = shift;
  return unless _reserved( $key );
  my @ids = adopt( $key );
  my $sid = semget( $key, 0, 0 );
  my $now = _shm_now();
  shmctl( $_, IPC_RMID, 0 ) for grep { _still_ours_shm( $_, $now ) } @ids;
  semctl( $sid, 0, IPC_RMID, 0 ) if defined $sid && exists $OWN_SEM{$sid};
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

# What $code returns once $ok takes it, or after about 2 s its last value: for
# what another process changes for a moment (a `sharelite list` run by a test
# beside this one attaches every segment there is to read it).
sub settled {
  my ( $code, $ok ) = @_;
  my $v;
  for ( 1 .. 40 ) {
    $v = $code->();
    return $v if $ok->( $v );
    select undef, undef, undef, 0.05;
  }
  return $v;
}

# Whatever happens, the test file ends within $limit seconds: a forked
# watchdog SIGKILLs it then (and goes away with it, or at its END). The limit
# is for a machine that starts perl within 50 ms; where perl starts slower
# (an emulated CPU: qemu-user takes seconds, a busy tester's machine), it
# grows in proportion, up to 20 times, as the file's many children do.
my $WATCHDOG;
sub watchdog {
  my $limit = shift;
  my $main  = $$;
  my $pid   = fork;
  if ( defined $pid && !$pid ) {
    require Time::HiRes;
    my $t0 = Time::HiRes::time();
    system { $^X } $^X, '-e', '1';
    my $slow = ( Time::HiRes::time() - $t0 ) / 0.05;
    $limit = int( $limit * ( $slow > 20 ? 20 : $slow > 1 ? $slow : 1 ) );
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
  adopt( $key );
  my $id = semget( $key, 0, 0 );
  return ( 'nosem', 'nosem' ) unless defined $id;
  return map { my $v = semctl( $id, $_, IPC::SysV::GETVAL(), 0 ); defined $v ? 0 + $v : 'err' } 1, 2;
}

# The listing row of the segment $id, or undef.
sub shm_row {
  my $id = shift;
  my ( $r ) = grep { $_->{id} == $id } sysv_segments();
  return $r;
}

# The listing row of the semaphore set at $key (never a private one), or undef.
sub sem_row_by_key {
  my $key = shift;
  my ( $r ) = grep { $_->{key} == $key && $key != 0 } sysv_semaphores();
  return $r;
}

# Permission bits of the segment $id / of the semaphore set at $key.
sub perms_of_shm { my $r = shm_row( shift ); $r ? $r->{mode} : undef }
sub perms_of_sem { my $r = sem_row_by_key( shift ); $r ? $r->{mode} : undef }

# The real size of the head segment at $key, or undef.
sub real_size {
  my ( $id ) = chain_shmids( shift );
  return undef unless defined $id;
  my $r = shm_row( $id );
  return $r ? $r->{size} : undef;
}

# True when the segment $id is gone for good: IPC_STAT fails and the listing
# does not show it (a segment marked for removal stays listed while it is
# attached somewhere).
sub shm_gone {
  my $id = shift;
  my $buf;
  return 0 if shmctl( $id, IPC::SysV::IPC_STAT(), $buf );
  return !shm_row( $id );
}

# Whether the system lets this process make $n more segments of $size bytes
# now, found by trying (IPC_PRIVATE segments, removed at once): '' when it
# does, otherwise why not, naming the limit it hit. Dies on an error that is
# no limit.
sub no_room_for {
  my ( $n, $size ) = @_;
  my ( @ids, $why );
  while ( @ids < $n ) {
    my $id = shmget( IPC_PRIVATE, $size, 0600 | IPC::SysV::IPC_CREAT() );
    if ( defined $id ) { push @ids, $id; next }
    my $err   = "$!";
    my $limit = $!{ENOSPC} ? 'segments in all (shmmni) or their total size (shmall)'
      : $!{ENOMEM} ? 'the total size of segments (shmall)'
      : $!{EINVAL} ? 'the size of one segment (shmmax)'
      : undef;
    shmctl( $_, IPC_RMID, 0 ) for @ids;
    die "no_room_for: shmget: $err\n" unless $limit;
    return sprintf 'needs %d segments of %d bytes at once; the system allows %d more now (%s: its limit on %s)', $n, $size,
      scalar @ids, $err, $limit;
  }
  shmctl( $_, IPC_RMID, 0 ) for @ids;
  return '';
}

# How many segments a new process may have attached at once, where the system
# limits it below $most (macOS: kern.sysv.shmseg, 8 by default; the BSDs:
# kern.ipc.shmseg); undef when a process may attach $most. Probed once per
# $most, in a new process that attaches one segment of its own again and
# again until the system refuses (EMFILE), then removes it.
my %ATTACH_LIMIT;
sub attach_limit {
  my $most = shift || 64;
  return $ATTACH_LIMIT{$most} if exists $ATTACH_LIMIT{$most};
  my ( $rc, $out ) = run_impl( 'ours', <<'EOC', $most );
my $most = shift;
my $id = shmget( IPC_PRIVATE, 4096, 0600 | IPC_CREAT ) // die "shmget: $!";
my ( $n, $err ) = ( 0, 0 );
while ( $n < $most ) {
  defined IPC::SysV::shmat( $id, undef, 0 ) or do { $err = 0 + $!; last };
  $n++;
}
shmctl( $id, IPC_RMID, 0 );
print "$n $err";
EOC
  my ( $n, $err ) = split ' ', $out // '';
  return $ATTACH_LIMIT{$most} = $rc == 0 && defined $err && $err == POSIX::EMFILE() ? $n : undef;
}

# new() croaks at the test's line, as if the test had called it: Carp passes
# over the frames of a package that the croaking one trusts.
our @CARP_NOT = ('IPC::ShareLite');

# IPC::ShareLite->new( @args ) under a 10 s alarm (a hang fails the test
# instead of blocking the run): the object, or undef with new's error in $@.
sub new_bounded {
  my @args = @_;
  local $SIG{ALRM} = 'DEFAULT';
  alarm 10;
  my $s = eval { IPC::ShareLite->new( @args ) };
  my $err = $@;
  alarm 0;
  $@ = $err;
  return $s;
}

# IPC::ShareLite->new( @args ): the object, or undef with new's error shown
# as a diagnostic.
sub new_or_diag {
  my @args = @_;
  my $s = eval { IPC::ShareLite->new( @args ) };
  Test::More::diag( "new(@args): $@" ) unless $s;
  return $s;
}

# Every SysV object as "shm:ID" / "sem:ID" => its listing row.
sub ipc_objects {
  my %o;
  $o{"shm:$_->{id}"} = $_ for sysv_segments();
  $o{"sem:$_->{id}"} = $_ for sysv_semaphores();
  return \%o;
}

# The objects of ipc_objects() that were not in $before and are at $key
# (undef: any key) or were made by $pid, sorted, each as
# "shm:ID key=KEY cpid=PID" (no cpid for a semaphore set: the listing has
# none). Dies where the listing shows no creator of a new segment and $pid
# is asked about: it cannot tell.
sub created_since {
  my ( $before, $key, $pid ) = @_;
  my $now = ipc_objects();
  my @new = grep { !$before->{$_} } sort keys %$now;
  if ( defined $pid && $pid > 0 ) {
    my @unknown = grep { /^shm:/ && !defined $now->{$_}{cpid} } @new;
    die "created_since: the listing shows no creator pid of @unknown\n" if @unknown;
  }
  @new = grep {
    my $r = $now->{$_};
    ( defined $key && $r->{key} == $key ) || ( defined $r->{cpid} && defined $pid && $r->{cpid} == $pid )
  } @new;
  return map { "$_ key=$now->{$_}{key}" . ( defined $now->{$_}{cpid} ? " cpid=$now->{$_}{cpid}" : '' ) } @new;
}

# True when a segment or a semaphore set exists at $key.
sub exists_share {
  my $key = shift;
  return defined( semget( $key, 0, 0 ) ) || defined( shmget( $key, 0, 0 ) );
}

# Everything of ours still there: first what is at our keys now, and the
# chains of our heads; then each recorded id that still exists.
sub _ours_now {
  for my $r ( @RESERVED ) { adopt( $r->[0] + $_ ) for 0 .. $r->[1] }
  my $now = _shm_now();
  for my $h ( grep { _still_ours_shm( $_, $now ) } keys %HEAD ) { _own_chain( $h, $now ) }
  $now = _shm_now();
  my $sems = _sem_now();
  my @shm = sort { $a <=> $b } grep { _still_ours_shm( $_, $now ) } keys %OWN_SHM;
  my @sem = sort { $a <=> $b } grep { _still_ours_sem( $_, $sems ) } keys %OWN_SEM;
  return ( [ map { $now->{$_} } @shm ], [ map { $sems->{$_} } @sem ] );
}

# SysV objects this test file made that are still there (see the top).
sub leaked_objects {
  my ( $shm, $sem ) = _ours_now();
  return ( ( map { "shm key=$_->{key} shmid=$_->{id} cpid=$_->{cpid}" } @$shm ),
    ( map { "sem key=$_->{key} semid=$_->{id}" } @$sem ) );
}

sub no_leaks_ok {
  my $name = shift || 'no SysV object left behind';
  my @left = leaked_objects();
  my $tb   = Test::More->builder;
  $tb->ok( !@left, $name ) or $tb->diag( join "\n", @left );
}

# Remove what this file made and left: the semaphore sets first (a process
# still waiting on one wakes up), then the segments.
sub _cleanup {
  my ( $shm, $sem ) = _ours_now();
  semctl( $_->{id}, 0, IPC_RMID, 0 ) for @$sem;
  shmctl( $_->{id}, IPC_RMID, 0 ) for @$shm;
}

# The tag this implementation writes into the shm_state field of the chained
# segments it makes, their version field then holding the head's shmid
# (doc/FORMAT.md, 6).
my $CHAIN_TAG = 0x534c4348;

# When the listing cannot be had (no ipcs, or one that fails): what is at
# our keys and the chains hanging from there are found without it (a chained
# segment only with this implementation's tag naming its head, or at a key of
# ours), then what was recorded is removed by id, each checked by IPC_STAT to
# have the size it had (a segment) or by semget to still be at its key (a
# semaphore set).
sub _cleanup_by_id {
  for my $k ( map { my $r = $_; $r->[0] .. $r->[0] + $r->[1] } @RESERVED ) {
    my $sid = semget( $k, 0, 0 );
    $OWN_SEM{$sid} = $k if defined $sid && !exists $OWN_SEM{$sid};
    my $head = shmget( $k, 0, 0 ) // next;
    my $st = IPC::ShareLite::Inspect::segment_stat( $head ) or next;
    $OWN_SHM{$head} ||= [ $k, $st->{segsz} ];
    my ( undef, @rest ) = _walk( $head );
    for my $id ( @rest ) {
      my ( undef, undef, $state, $version ) = header_of( $id );
      last unless defined $state && $state == $CHAIN_TAG && $version == $head;
      my $cst = IPC::ShareLite::Inspect::segment_stat( $id ) or last;
      $OWN_SHM{$id} ||= [ 0, $cst->{segsz} ];
    }
  }
  for my $id ( keys %OWN_SEM ) {
    my $now = $OWN_SEM{$id} ? semget( $OWN_SEM{$id}, 0, 0 ) : undef;
    semctl( $id, 0, IPC_RMID, 0 ) if defined $now && $now == $id;
  }
  for my $id ( keys %OWN_SHM ) {
    my $st = IPC::ShareLite::Inspect::segment_stat( $id ) or next;
    shmctl( $id, IPC_RMID, 0 ) if $st->{segsz} == $OWN_SHM{$id}[1];
  }
}

END {
  if ( $$ == $MAIN_PID ) {
    my $st = $?;
    if ( $WATCHDOG ) { kill 'KILL', $WATCHDOG; waitpid $WATCHDOG, 0 }
    # Nothing to clean up without a key handed out or an object recorded
    # (a file that skipped): no listing is asked for then.
    if ( @RESERVED || %OWN_SHM || %OWN_SEM ) {
      unless ( eval { _cleanup(); 1 } ) {
        ( my $why = $@ ) =~ s/ at \S+ line \d+\.?\n*\z//;
        print STDERR "# SLTest: no listing of SysV objects for the cleanup ($why): removing what it made by id\n";
        _cleanup_by_id();
      }
    }
    $? = $st;
  }
}

1;
