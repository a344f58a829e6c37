package IPC::ShareLite::Inspect;

# What has to stay pure Perl: listing the host's SysV objects, whether a key
# is in use, key_t values. Nothing here knows the share format (the Rust core
# does), locks, attaches for writing or creates.

use strict;
use warnings;

use Carp qw(croak);
use Errno ();
use Exporter qw(import);
use IPC::SysV qw(IPC_STAT);
use File::Spec ();
use IPC::SharedMem ();
use IPC::Semaphore ();

our $VERSION = '0.18';

our @EXPORT_OK = qw(
  KEY_BITS signed_key unsigned_key key_in_use segment_stat
  proc_rows list_segments list_semaphores parse_ipcs
);
our %EXPORT_TAGS = ( all => \@EXPORT_OK );

# A key_t's width (exported from here too).
use IPC::ShareLite::KeyT qw(KEY_BITS);

=head1 NAME

IPC::ShareLite::Inspect - look at IPC::ShareLite shares without opening them

=head1 SYNOPSIS

    use IPC::ShareLite::Inspect qw(:all);

    for my $seg ( list_segments() ) {              # every SysV segment
      printf "%d at key 0x%08x, %d bytes\n", $seg->{id}, unsigned_key( $seg->{key} ), $seg->{size};
    }
    my $taken = key_in_use( 1971 );

=head1 DESCRIPTION

What the Perl side of this distribution needs in pure Perl, so that it works
where the module's compiled part is not loaded (the test libraries, the
benchmark's children running the original 0.17): listing the SysV segments
and semaphore sets of the host (F</proc/sysvipc> where it can be read, the
output of L<ipcs(1)> elsewhere), whether a key is in use, the width of a
C<key_t> and its values, and C<IPC_STAT> of a segment. It knows nothing of
the share format: what is a share, a chain's state and which segments are
orphans are the Rust core's to say (F<doc/FORMAT.md>, section 8; the
C<sharelite> command asks it). Nothing here takes a lock, attaches a segment
for writing, or creates anything.

Nothing is exported by default; C<:all> exports every function below.

=head1 KEYS

=head2 KEY_BITS

    my $bits = KEY_BITS;    # 32 on Linux

The width of a C<key_t> here: 32 bits on Linux, macOS and Solaris, 64 on the
64-bit BSDs (L<IPC::ShareLite::KeyT> owns it). A string key is the native C<int32> of its bytes everywhere,
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

=head1 SEGMENTS

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
  my %st = map { $_ => $st->$_ } qw(uid gid cuid cgid mode segsz lpid cpid nattch atime dtime ctime);
  $st{mode} = _perm_mode( $st{mode} );
  return \%st;
}

# The mode word IPC_STAT filled. A 32-bit mode field holds at most 0o7777
# (permissions and a few flags); qemu-user (7.2) writes it 16 bits wide, so on
# a 64-bit big-endian target (s390x) the bits land in its upper half: bits
# found only there are moved back, a no-op on a real kernel. (The Rust core's
# sys::perm_mode does the same for its own IPC_STAT.)
sub _perm_mode {
  my $m = shift;
  return $m unless defined $m && $m && !( $m & 0xffff );
  return $m >> 16;
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
  my %st = map { $_ => $st->$_ } qw(uid gid cuid cgid mode ctime otime nsems);
  $st{mode} = _perm_mode( $st{mode} );
  return \%st;
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

Several texts (the outputs of several runs) are merged by id. An object
missing from one of the texts that list its kind was created or removed
between the runs, and is left out: no row lacks a field its runs give.

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
  my ( %order, %tables, %times );
  for my $text ( @texts ) {
    my ( $facility, @cols, %listed, %table );
    for my $line ( split /\n/, $text ) {
      next unless $line =~ /\S/;
      if ( $line =~ /^\s*-+\s*(.*?)\s*-*\s*$/ && $1 ne '' ) {    # util-linux title
        $facility = _facility( $1 );
        $table{$facility} = 1 if $facility;
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
        $table{$facility} = 1 if $facility;
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
      $times{$type}{ $raw{id} }++ unless $listed{$type}{ $raw{id} }++;
    }
    $tables{$_}++ for keys %{ { %table, %listed } };
  }
  my %out;
  for my $type ( qw(shm sem) ) {
    my @ids = grep { $times{$type}{$_} == $tables{$type} } @{ $order{$type} || [] };
    $out{$type} = [ map { _ipcs_row( $type, $by{$type}{$_} ) } @ids ];
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

1;

__END__

=head1 SEE ALSO

L<IPC::ShareLite>, L<sharelite>, F<doc/FORMAT.md> in the distribution, ipcs(1).

=cut
