package IPC::ShareLite::Inspect;

# Read-only knowledge of the objects behind a share, in pure Perl: key_t
# values, the segment header, the chain, the SysV objects of the host, and orphaned
# chained segments. Nothing here locks, attaches for writing or creates.

use strict;
use warnings;

use Carp qw(croak);
use Config ();
use Errno ();
use Exporter qw(import);
use IPC::SysV qw(IPC_STAT IPC_RMID);
use File::Spec ();
use IPC::SharedMem ();
use IPC::Semaphore ();

our $VERSION = '0.18';

our @EXPORT_OK = qw(
  KEY_BITS signed_key unsigned_key key_in_use
  HEADER_SIZE CHAIN_TAG read_header segment_stat segment_size walk_chain segments_for
  proc_rows list_segments list_semaphores parse_ipcs
  process_alive orphans remove_orphan
);
our %EXPORT_TAGS = ( all => \@EXPORT_OK );

use constant HEADER_SIZE => 16;
# A key_t: 32 bits on Linux, macOS and Solaris, a long on the BSDs
# (IPC::ShareLite's _KEY_BITS says the same).
use constant KEY_BITS => $^O =~ /\A(?:freebsd|netbsd|openbsd|dragonfly)\z/ ? 8 * $Config::Config{longsize} : 32;
use constant CHAIN_TAG   => 0x534c4348;    # 'SLCH', see rust-core/src/segment.rs

=head1 NAME

IPC::ShareLite::Inspect - look at IPC::ShareLite shares without opening them

=head1 SYNOPSIS

    use IPC::ShareLite::Inspect qw(:all);

    my $key  = $share->key;                        # an IPC::ShareLite's
    my $head = shmget( $key, 0, 0 );
    my $h    = read_header( $head );               # next_shmid, length, ...
    my $walk = walk_chain( $head );                # shmids, state, error
    printf "%d bytes in %d segments (%s)\n", $h->{length},
      scalar @{ $walk->{shmids} }, $walk->{state};

    for my $seg ( list_segments() ) { ... }        # every SysV segment
    for my $o ( orphans() ) { remove_orphan( $o ) }

=head1 DESCRIPTION

One copy of what the Perl side of this distribution knows about the objects
behind a share (see F<doc/FORMAT.md>): the width of a key, the 16-byte
segment header, following a chain of segments, listing the SysV segments and
semaphore sets of the host, and finding chained segments this implementation
made whose share is gone. Used by the C<sharelite> command, the test
libraries and the benchmark; pure Perl (L<IPC::SysV> and perl's builtin
C<shmread>, C<shmctl>, C<semctl>), so it works without the compiled part.

Nothing here takes a lock, attaches a segment for writing, or creates
anything. What it reads is a snapshot taken without the share's lock: a
store running meanwhile can show as a broken chain. The only function that
changes anything is L</remove_orphan>.

Nothing is exported by default; C<:all> exports every function below.

=head1 KEYS

=head2 KEY_BITS

    my $bits = KEY_BITS;    # 32 on Linux

The width of a C<key_t> here: 32 bits on Linux, macOS and Solaris, 64 on the
64-bit BSDs. A string key is the native C<int32> of its bytes everywhere,
widened (sign-extended) to a C<key_t>. (How C<-key> becomes a key is
IPC::ShareLite's own business: F<doc/FORMAT.md>, section 7.)

=head2 signed_key

    my $key_t = signed_key( $number );

The low 32 bits of C<$number> as a signed C<key_t> (what F</proc/sysvipc>
shows): C<signed_key(0xfffffffe)> is -2.

=cut

sub signed_key {
  return unpack( 'l', pack( 'L', $_[0] & 0xffffffff ) ) if KEY_BITS == 32;
  return unpack( 'q', pack( 'Q', $_[0] ) );
}

=head2 unsigned_key

    my $bits = unsigned_key( $key_t );

The same bits as an unsigned number (for printing in hex, sorting):
C<unsigned_key(-2)> is 0xfffffffe where a C<key_t> has 32 bits.

=cut

sub unsigned_key {
  return unpack( 'L', pack( 'l', $_[0] ) ) if KEY_BITS == 32;
  return unpack( 'Q', pack( 'q', $_[0] ) );
}

=head2 key_in_use

    my $taken = key_in_use( $key );

True when a segment or a semaphore set exists at C<$key>, also one this
process may not open (C<shmget> and C<semget> with no flags fail with
anything but ENOENT). A program that wants keys of its own skips a key in
use, and with 0.17 in the picture, the keys after it where 0.17 chains its
segments. False for C<IPC_PRIVATE> (0), which names no object.

=cut

sub key_in_use {
  my $key = shift;
  return 0 if $key == 0;
  return 1 if defined shmget( $key, 0, 0 ) || $! != Errno::ENOENT();
  return 1 if defined semget( $key, 0, 0 ) || $! != Errno::ENOENT();
  return 0;
}

=head1 SEGMENTS AND CHAINS

=head2 HEADER_SIZE

=head2 CHAIN_TAG

    my $bytes = HEADER_SIZE;    # 16
    my $tag   = CHAIN_TAG;      # 0x534c4348

Constants: the 16 bytes of header at the start of every segment, and
0x534c4348 (C<'SLCH'>), the tag this implementation writes into the
C<shm_state> field of the chained segments it creates (their C<version>
field then holds the shmid of the head they were made for).

=head2 read_header

    my $header = read_header( $shmid );

The header of segment C<$shmid>, read with C<shmread>, as a hash reference
C<< { next_shmid, length, shm_state, version } >> (native-endian: two signed
and two unsigned 32-bit integers). Undef with C<$!> set when the segment
cannot be read (EACCES, EINVAL for one that is gone or smaller than 16
bytes).

=cut

sub read_header {
  my $id = shift;
  my $buf;
  shmread( $id, $buf, 0, HEADER_SIZE ) or return undef;
  my %h;
  @h{qw(next_shmid length shm_state version)} = unpack 'l l L L', $buf;
  return \%h;
}

=head2 segment_stat

    my $stat = segment_stat( $shmid );

C<IPC_STAT> of a segment as a hash reference with the fields of
L<IPC::SharedMem>'s C<stat>: C<uid>, C<gid>, C<cuid>, C<cgid>, C<mode>
(with the system's flag bits), C<segsz>, C<lpid>, C<cpid>, C<nattch>,
C<atime>, C<dtime>, C<ctime>. Undef with C<$!> set on failure.

=cut

sub segment_stat {
  my $id = shift;
  my $data = '';
  shmctl( $id, IPC_STAT, $data ) or return undef;
  my $st = IPC::SharedMem::stat::->new->unpack( $data );
  return { map { $_ => $st->$_ } qw(uid gid cuid cgid mode segsz lpid cpid nattch atime dtime ctime) };
}

=head2 segment_size

    my $bytes = segment_size( $shmid );

The size in bytes of segment C<$shmid> (C<shm_segsz>), undef with C<$!> set
on failure.

=cut

sub segment_size {
  my $st = segment_stat( $_[0] ) or return undef;
  return $st->{segsz};
}

=head2 walk_chain

    my $walk = walk_chain( $head_shmid, %options );

Follows C<next_shmid> from the head, reading each header with C<shmread>.
Returns a hash reference:

=over

=item C<shmids>

The shmids reached, the head first (empty when the head cannot be read).

=item C<state>

C<ok>; C<broken> (a link to a segment that is gone, or an invalid id);
C<cycle> (a link back into the chain); C<foreign> (a segment of another
size than the head; the walk goes on past it); C<too-long> (more segments
than C<< limit => N >>, when given); C<unreadable> (no permission to read a
segment); C<error> (the head could not be read for another reason).

=item C<error>

When the state is not C<ok>: what was found and where, in words.

=item C<head>

The head's header as L</read_header> returns it, undef when unreadable.

=item C<size>

The head's size, undef when unknown.

=back

Each segment is visited once, so the walk ends even on a hostile chain.

=cut

sub walk_chain {
  my ( $head, %opt ) = @_;
  my %w = ( shmids => [], state => 'ok', error => undef, head => undef, size => undef );
  my $fail = sub {
    my ( $state, $error ) = @_;
    @w{qw(state error)} = ( $state, $error ) if $w{state} eq 'ok' || $w{state} eq 'foreign';
  };
  my $h = read_header( $head );
  unless ( $h ) {
    $fail->( $! == Errno::EACCES() ? 'unreadable' : 'error', "head segment $head: $!" );
    return \%w;
  }
  $w{head} = $h;
  $w{size} = segment_size( $head );
  my @ids  = ( $head );
  my %seen = ( $head => 1 );
  my $next = $h->{next_shmid};
  while ( $next != -1 ) {
    if ( $next < 0 ) {
      $fail->( 'broken', "invalid next_shmid $next after segment $ids[-1]" );
      last;
    }
    if ( $seen{$next}++ ) {
      $fail->( 'cycle', "segment $ids[-1] links back to segment $next" );
      last;
    }
    if ( defined $opt{limit} && @ids >= $opt{limit} ) {
      $fail->( 'too-long', "more than $opt{limit} segments" );
      last;
    }
    my $nh = read_header( $next );
    unless ( $nh ) {
      my $why = "$!";
      $fail->( $! == Errno::EACCES() ? 'unreadable' : 'broken', "segment $ids[-1] links to segment $next: $why" );
      last;
    }
    my $size = segment_size( $next );
    if ( defined $size && defined $w{size} && $size != $w{size} && $w{state} eq 'ok' ) {
      $fail->( 'foreign', "segment $next is $size bytes, not $w{size}" );
    }
    push @ids, $next;
    $next = $nh->{next_shmid};
  }
  $w{shmids} = \@ids;
  return \%w;
}

=head2 segments_for

    my $count = segments_for( $length, $segment_size );

How many segments, head included, a value of C<$length> bytes occupies in
segments of C<$segment_size> bytes: C<ceil($length / ($segment_size - 16))>,
at least 1.

=cut

sub segments_for {
  my ( $len, $size ) = @_;
  my $data = $size - HEADER_SIZE;
  croak "segments_for: a segment of $size bytes holds no data" if $data <= 0;
  return 1 if $len <= 0;
  return int( ( $len + $data - 1 ) / $data );
}

=head1 LISTING SYSV OBJECTS

=head2 list_segments

=head2 list_semaphores

    my @segments = list_segments( %options );
    my @sets     = list_semaphores( %options );

Every SysV shared memory segment, or semaphore set, the system shows to
this process, each as a hash reference. Fields (undef where the source does
not tell):

=over

=item segments

C<id>, C<key> (a signed C<key_t>), C<mode> (permission bits, 0 .. 0777),
C<removed> (1 when marked for removal, 0 when not, undef when unknown),
C<size>, C<nattch>, C<cpid>, C<lpid>, C<uid>, C<gid>, C<cuid>, C<cgid>.

=item semaphore sets

C<id>, C<key>, C<mode>, C<nsems>, C<uid>, C<gid>, C<cuid>, C<cgid>.

=back

The source is F</proc/sysvipc/shm> and F</proc/sysvipc/sem> where they can
be read (Linux), otherwise the output of C<ipcs>, read with L</parse_ipcs>.
C<< source => 'proc' >> or C<< source => 'ipcs' >> chooses; C<< ipcs =>
$path >> names the program (default C<ipcs> from C<PATH>, run with
C<LC_ALL=C>). Croaks when no source can be read.

From C<ipcs>, user and group names are turned into ids with C<getpwnam> and
C<getgrnam>. What an C<ipcs> cuts short is taken from C<IPC_STAT> where this
process may read the object (L</segment_stat>; C<semctl> C<IPC_STAT> for a
semaphore set): owners and groups whose names do not resolve (Solaris and
illumos print names cut to 8 characters: there the ids always come from
C<IPC_STAT>), and on macOS the permission bits (its C<ipcs> shows no execute
bits). What still cannot be told is undef: the BSDs and macOS do not show
whether a segment is marked for removal, and their C<ipcs> shows no pids
for semaphore sets.

=cut

sub list_segments   { return _list( 'shm', @_ ) }
sub list_semaphores { return _list( 'sem', @_ ) }

my %PROC_ID = ( shm => 'shmid', sem => 'semid' );

sub _list {
  my ( $what, %opt ) = @_;
  my $source = $opt{source} || ( -r "/proc/sysvipc/$what" ? 'proc' : 'ipcs' );
  if ( $source eq 'proc' ) {
    my $file = "/proc/sysvipc/$what";
    open my $fh, '<', $file or croak "cannot read $file: $!";
    close $fh;
    return map { _from_proc( $what, $_ ) } proc_rows( $file );
  }
  croak "unknown source '$source'" unless $source eq 'ipcs';
  my @rows = @{ _ipcs( $opt{ipcs} )->{$what} };
  _fill_from_stat( $what, $_ ) for @rows;
  return @rows;
}

# Fields of a row from ipcs that IPC_STAT gives instead, on the systems
# whose ipcs cuts them short: Solaris and illumos print owner and group
# names cut to 8 characters (one may resolve to another user), macOS shows
# no execute bits.
my %STAT_FIELDS = ( solaris => [qw(uid gid cuid cgid)], darwin => ['mode'] );

# Completes a row from ipcs with IPC_STAT of its object, where this process
# may read it: the fields above, and any owner or group left undefined (a
# name that does not resolve).
sub _fill_from_stat {
  my ( $what, $row ) = @_;
  my $st = $what eq 'shm' ? segment_stat( $row->{id} ) : _semaphore_stat( $row->{id} );
  return unless $st;
  $st->{mode} &= 0777;
  $row->{$_} = $st->{$_} for @{ $STAT_FIELDS{$^O} || [] };
  for ( qw(uid gid cuid cgid) ) { $row->{$_} = $st->{$_} unless defined $row->{$_} }
}

# semctl IPC_STAT of the semaphore set $id as a hash reference (the fields
# of IPC::Semaphore's stat: uid, gid, cuid, cgid, mode, ctime, otime, nsems);
# undef when it cannot be read.
sub _semaphore_stat {
  my $id = shift;
  my $data = '';
  semctl( $id, 0, IPC_STAT, $data ) or return undef;
  my $st = IPC::Semaphore::stat::->new->unpack( $data );
  return { map { $_ => $st->$_ } qw(uid gid cuid cgid mode ctime otime nsems) };
}

sub _from_proc {
  my ( $what, $r ) = @_;
  my $perms = oct( $r->{perms} // 0 );
  my %o = (
    id    => _num( $r->{ $PROC_ID{$what} } ),
    key   => _num( $r->{key} ),
    mode  => $perms & 0777,
    ( map { $_ => _num( $r->{$_} ) } qw(uid gid cuid cgid) ),
  );
  if ( $what eq 'shm' ) {
    $o{removed} = $perms & 01000 ? 1 : 0;
    $o{$_} = _num( $r->{$_} ) for qw(size nattch cpid lpid);
  } else {
    $o{nsems} = _num( $r->{nsems} );
  }
  return \%o;
}

sub _num { defined $_[0] && $_[0] =~ /\A-?\d+\z/ ? 0 + $_[0] : undef }

=head2 proc_rows

    my @rows = proc_rows( $file );

The rows of a F</proc/sysvipc> table (C<'shm'>, C<'sem'>, C<'msg'> or a
path), each a hash reference keyed by the column names of its header line,
values as the file shows them. An empty list when the file cannot be read.

=cut

sub proc_rows {
  my $file = shift;
  $file = "/proc/sysvipc/$file" unless $file =~ m{/};
  open my $fh, '<', $file or return ();
  my $head = <$fh>;
  return () unless defined $head;
  my @cols = split ' ', $head;
  my @rows;
  while ( my $line = <$fh> ) {
    my @f = split ' ', $line;
    next unless @f;
    my %r;
    @r{@cols} = @f;
    push @rows, \%r;
  }
  return @rows;
}

=head2 parse_ipcs

    my $objects = parse_ipcs( @texts );

Parses the output of C<ipcs> into C<< { shm => [...], sem => [...] } >>,
rows shaped as for L</list_segments> and L</list_semaphores>. Columns are
found by their header names, so any set of columns works:

=over

=item *

the BSDs, macOS and Solaris/illumos (C<ipcs -a>): one header line
C<T ID KEY MODE OWNER GROUP ...> per facility, before or after its title,
rows starting with C<m>, C<s> or C<q>; keys in decimal or C<0x> hex; modes as
11 characters (C<--rw-rw-rw->, a C<D> marking a removed segment);

=item *

util-linux (C<ipcs -m>, C<ipcs -m -p>, C<ipcs -m -c>, C<ipcs -s>,
C<ipcs -s -c>): a C<------ Title ------> line, a lower-case header
(C<key shmid owner perms bytes nattch status>, ...), octal perms, C<dest> in
the status of a removed segment.

=back

Several texts (the outputs of several runs) are merged by id.

=cut

# Header names of every flavour -> our field names.
my %COLUMN = (
  id => 'id', shmid => 'id', semid => 'id', msqid => 'id',
  key => 'key', mode => 'mode', perms => 'mode',
  owner => 'owner', uid => 'owner', group => 'group', gid => 'group',
  creator => 'creator', cuid => 'creator', cgroup => 'cgroup', cgid => 'cgroup',
  nattch => 'nattch', segsz => 'size', bytes => 'size', cpid => 'cpid', lpid => 'lpid',
  nsems => 'nsems', status => 'status',
);
my %TYPE = ( m => 'shm', s => 'sem', q => 'msg' );

sub parse_ipcs {
  my @texts = @_;
  my %by = ( shm => {}, sem => {}, msg => {} );
  my %order;
  for my $text ( @texts ) {
    my ( $facility, @cols );
    for my $line ( split /\n/, $text ) {
      next unless $line =~ /\S/;
      if ( $line =~ /^\s*-+\s*(.*?)\s*-*\s*$/ && $1 ne '' ) {    # util-linux title
        $facility = _facility( $1 );
        @cols = ();
        next;
      }
      my @f = split ' ', $line;
      if ( ( $f[0] eq 'T' && grep { $_ eq 'ID' } @f ) || grep { /\A(?:shmid|semid|msqid)\z/ } @f ) {
        @cols = map { $COLUMN{ lc $_ } || ( $_ eq 'T' ? 'type' : lc $_ ) } @f;
        next;
      }
      if ( $line =~ /^(?:Shared Memory|Semaphores?|Message Queues)\b/i ) {
        $facility = _facility( $line );
        next;
      }
      next unless @cols;
      my %raw;
      @raw{@cols} = @f;
      $raw{status} //= '' if grep { $_ eq 'status' } @cols;    # the last column, empty unless set
      my $type = defined $raw{type} ? $TYPE{ $raw{type} } : $facility;
      next unless $type && defined $raw{id} && $raw{id} =~ /\A\d+\z/;
      my $row = $by{$type}{ $raw{id} } ||= do { push @{ $order{$type} }, $raw{id}; {} };
      _merge_ipcs( $type, $row, \%raw );
    }
  }
  my %out;
  for my $type ( qw(shm sem) ) {
    $out{$type} = [ map { _ipcs_row( $type, $by{$type}{$_} ) } @{ $order{$type} || [] } ];
  }
  return \%out;
}

sub _facility {
  my $t = shift;
  return 'shm' if $t =~ /shared mem/i;
  return 'sem' if $t =~ /semaphore/i;
  return 'msg' if $t =~ /message/i;
  return undef;
}

# Fills a row from the columns of one table; a later table adds fields.
sub _merge_ipcs {
  my ( $type, $row, $raw ) = @_;
  $row->{id} = 0 + $raw->{id};
  if ( defined( my $k = $raw->{key} ) ) {
    no warnings 'portable';
    $row->{key} = $k =~ /\A0x([0-9a-f]+)\z/i ? signed_key( hex $1 ) : $k =~ /\A-?\d+\z/ ? signed_key( $k ) : undef;
  }
  if ( defined( my $m = $raw->{mode} ) ) {
    if ( $m =~ /\A[0-7]+\z/ ) {
      $row->{mode} = oct( $m ) & 0777;
    } elsif ( length $m == 11 ) {
      my $bits = 0;
      my @c = split //, substr( $m, 2 );
      for my $i ( 0 .. 8 ) {
        $bits |= 1 << ( 8 - $i ) if $c[$i] ne '-';
      }
      $row->{mode} = $bits;
      $row->{removed} = 1 if $type eq 'shm' && substr( $m, 0, 2 ) =~ /D/;
    }
  }
  $row->{removed} = $raw->{status} =~ /dest/ ? 1 : 0 if defined $raw->{status} && $type eq 'shm';
  for my $f ( qw(size nattch cpid lpid nsems) ) {
    $row->{$f} = 0 + $raw->{$f} if defined $raw->{$f} && $raw->{$f} =~ /\A\d+\z/;
  }
  $row->{uid}  = _uid( $raw->{owner} )   if defined $raw->{owner};
  $row->{cuid} = _uid( $raw->{creator} ) if defined $raw->{creator};
  $row->{gid}  = _gid( $raw->{group} )   if defined $raw->{group};
  $row->{cgid} = _gid( $raw->{cgroup} )  if defined $raw->{cgroup};
}

sub _uid { my $n = shift; return $n =~ /\A\d+\z/ ? 0 + $n : scalar getpwnam( $n ) }
sub _gid { my $n = shift; return $n =~ /\A\d+\z/ ? 0 + $n : scalar getgrnam( $n ) }

sub _ipcs_row {
  my ( $type, $r ) = @_;
  my @f = $type eq 'shm' ? qw(id key mode removed size nattch cpid lpid uid gid cuid cgid) : qw(id key mode nsems uid gid cuid cgid);
  return { map { $_ => $r->{$_} } @f };
}

# Runs ipcs (as many times as its flavour needs) and parses the output.
sub _ipcs {
  my $prog = shift || 'ipcs';
  my $all = _run( $prog, '-a' );
  my @texts = ( $all );
  push @texts, map { _run( $prog, @$_ ) } [ '-m' ], [ '-m', '-p' ], [ '-m', '-c' ], [ '-s' ], [ '-s', '-c' ]
   if $all =~ /^-{3,} /m;    # util-linux: one kind of column per run
  return parse_ipcs( @texts );
}

sub _run {
  my ( $prog, @args ) = @_;
  local $ENV{LC_ALL} = 'C';
  my $pid = open( my $fh, '-|' ) // croak "cannot run $prog: fork: $!";
  if ( !$pid ) {
    open STDERR, '>', File::Spec->devnull;
    { no warnings 'exec'; exec { $prog } $prog, @args; }
    require POSIX;
    POSIX::_exit( 127 );
  }
  my $out = do { local $/; <$fh> };
  close $fh;
  croak "cannot run '$prog @args' (exit status " . ( $? >> 8 ) . ")" if $?;
  return defined $out ? $out : '';
}

=head1 ORPHANED SEGMENTS

=head2 process_alive

    my $alive = process_alive( $pid );

False only when C<kill 0> says there is no process C<$pid> (ESRCH); true
for a live one, one of another user (EPERM), and for a pid that is 0,
negative or undefined (unknown: never taken for dead).

=cut

sub process_alive {
  my $pid = shift;
  return 1 unless defined $pid && $pid =~ /\A\d+\z/ && $pid > 0;
  return 1 if kill 0, $pid;
  return $! == Errno::ESRCH() ? 0 : 1;
}

=head2 orphans

    my @orphans = orphans( %options );

Chained segments made by this implementation whose share is gone (removed
by 0.17, by C<ipcrm>, or by a process killed while removing it), which
nothing ever reclaims otherwise. A segment is one only when all of these
hold:

=over

=item *

its key is 0 (C<IPC_PRIVATE>, as every chained segment of ours) and it is
not marked for removal;

=item *

it is attached nowhere (C<nattch> 0) and the process that created it is
gone (C<kill 0> fails with ESRCH);

=item *

its header carries the tag L</CHAIN_TAG> in C<shm_state>, and C<version>
holds the shmid of its head;

=item *

no segment with that shmid exists (C<IPC_STAT> fails with EINVAL or EIDRM),
or one exists (shmids are reused) and the walk of its chain, which must
complete, does not reach this segment.

=back

Anything that cannot be read or decided is left out. Returns a list of hash
references: C<id>, C<head> (the shmid of the head it was made for),
C<size>, C<mode>, C<uid>, C<cpid>, C<reason> (C<head gone> or C<not in the
chain of its head>). Options:

=over

=item C<< ids => [ SHMID, ... ] >>

Look only at these segments: no other segment is read at all.

=item C<< heads => [ SHMID, ... ] >>

Keep only the orphans made for one of these heads.

=item C<source>, C<ipcs>

As for L</list_segments>.

=back

=cut

sub orphans {
  my %opt   = @_;
  my %ids   = map { $_ => 1 } @{ $opt{ids} || [] };
  my %heads = map { $_ => 1 } @{ $opt{heads} || [] };
  my @found;
  for my $seg ( list_segments( map { $_ => $opt{$_} } grep { exists $opt{$_} } qw(source ipcs) ) ) {
    next if $opt{ids} && !$ids{ $seg->{id} };
    my $o = _orphan( $seg ) or next;
    next if $opt{heads} && !$heads{ $o->{head} };
    push @found, $o;
  }
  return @found;
}

sub _orphan {
  my $seg = shift;
  return undef unless defined $seg->{key} && $seg->{key} == 0;
  return undef if $seg->{removed};
  return undef unless defined $seg->{nattch} && $seg->{nattch} == 0;
  return undef if process_alive( $seg->{cpid} );
  my $h = read_header( $seg->{id} ) or return undef;
  return undef unless $h->{shm_state} == CHAIN_TAG;
  my $head = $h->{version};
  return undef if $head == $seg->{id} || $head > 0x7fffffff;
  my $reason;
  if ( segment_stat( $head ) ) {
    my $walk = walk_chain( $head );
    return undef if $walk->{state} eq 'unreadable' || $walk->{state} eq 'error';
    return undef if grep { $_ == $seg->{id} } @{ $walk->{shmids} };
    $reason = 'not in the chain of its head';
  } elsif ( $! == Errno::EINVAL() || $! == Errno::EIDRM() ) {
    $reason = 'head gone';
  } else {
    return undef;
  }
  return {
    id     => $seg->{id},
    head   => $head,
    size   => $seg->{size},
    mode   => $seg->{mode},
    uid    => $seg->{uid},
    cpid   => $seg->{cpid},
    reason => $reason,
  };
}

=head2 remove_orphan

    my $removed = remove_orphan( $orphan );

Checks the segment of C<$orphan> (a hash reference from L</orphans>, or a
shmid) again from a fresh C<IPC_STAT> and header, exactly as L</orphans>
does, and removes it (C<IPC_RMID>) only if it still is one: the same
creator, still attached nowhere. Returns true when removed; false with
C<$@> saying why not.

=cut

sub remove_orphan {
  my $o  = shift;
  my $id = ref $o ? $o->{id} : $o;
  $@ = '';
  my $st = segment_stat( $id );
  unless ( $st ) {
    $@ = "segment $id: $!";
    return 0;
  }
  my $seg = {
    id      => $id,
    key     => _key_of( $id ),
    removed => undef,
    nattch  => $st->{nattch},
    cpid    => $st->{cpid},
    size    => $st->{segsz},
    mode    => $st->{mode} & 0777,
    uid     => $st->{uid},
  };
  my $now = _orphan( $seg );
  if ( !$now || ( ref $o && ( $o->{cpid} // -1 ) != $st->{cpid} ) ) {
    $@ = "segment $id is no longer an orphan";
    return 0;
  }
  unless ( shmctl( $id, IPC_RMID, 0 ) ) {
    $@ = "segment $id: $!";
    return 0;
  }
  return 1;
}

# The key of a segment: IPC_STAT does not give it portably, the listing does.
sub _key_of {
  my $id = shift;
  my ( $seg ) = grep { $_->{id} == $id } list_segments();
  return $seg ? $seg->{key} : undef;
}


1;

__END__

=head1 SEE ALSO

L<IPC::ShareLite>, L<sharelite>, F<doc/FORMAT.md> in the distribution, ipcs(1).

=cut
