package IPC::ShareLite;

use strict;
use warnings;

use Carp qw(croak);
use Errno ();
use Fcntl qw(LOCK_EX LOCK_SH LOCK_UN LOCK_NB);
use IPC::SysV qw(IPC_CREAT IPC_EXCL IPC_RMID IPC_PRIVATE IPC_STAT GETVAL SETVAL GETALL SEM_UNDO);
use Scalar::Util qw(looks_like_number);
use XSLoader;
use IPC::ShareLite::KeyT ();
use Exporter qw(import);

our $VERSION = '0.18';

our @EXPORT = ();
our %EXPORT_TAGS = (
  all   => [qw( IPC_CREAT IPC_EXCL IPC_RMID IPC_PRIVATE LOCK_EX LOCK_SH LOCK_UN LOCK_NB )],
  lock  => [qw( LOCK_EX LOCK_SH LOCK_UN LOCK_NB )],
  flock => [qw( LOCK_EX LOCK_SH LOCK_UN LOCK_NB )],
);
our @EXPORT_OK = qw(
  IPC_CREAT IPC_EXCL IPC_RMID IPC_PRIVATE IPC_STAT GETVAL SETVAL GETALL SEM_UNDO
  LOCK_EX LOCK_SH LOCK_UN LOCK_NB IPC_STATE
);

# 0.17 listed this misspelling of IPC_STAT for export; scripts that import it
# keep compiling.
sub IPC_STATE () { IPC_STAT }

=head1 NAME

IPC::ShareLite - Lightweight interface to shared memory (Rust core, 0.17 compatible)

=head1 VERSION

This document describes IPC::ShareLite version 0.18, a drop-in replacement for
IPC::ShareLite 0.17 whose core is written in Rust.

=head1 SYNOPSIS

    use IPC::ShareLite qw( :lock );

    my $share = IPC::ShareLite->new(
        -key     => 1971,
        -create  => 'yes',
        -destroy => 'no'    # kept after the script: sharelite rm 1971
    ) or die $!;

    $share->store( "This is stored in shared memory" );
    my $str = $share->fetch;

    $share->store( 0 );     # a counter
    $share->lock( LOCK_EX );
    $share->store( $share->fetch + 1 );
    $share->unlock;

With C<< -destroy => 'no' >> the share stays when the script ends, for the
next run or other processes: C<< $share->remove >> removes it, and so does
C<sharelite rm 1971> from the shell (see L<sharelite>).

=head1 DESCRIPTION

IPC::ShareLite stores one string of any length in SysV shared memory so that
processes on one host can share it, with locks for what has to happen
atomically. Storage and retrieval are atomic.

This version keeps the public API, the messages, the return values and the
in-memory format of IPC::ShareLite 0.17: processes running 0.17 and processes
running this module share the same keys at the same time, locks included.
L</"DIFFERENCES FROM 0.17"> lists what it does better.

=head1 METHODS

=head2 C<< new( %options ) >> or C<< new($key, $create, $destroy, $exclusive, $mode, $flags, $size) >>

The constructor. Named options take a leading dash, in any case:

=over

=item C<-key> (or C<-glue>)

An integer shared by every process that uses the share, or a string of at most
four 8-bit characters (turned into an integer as 0.17 does:
C<unpack('i', pack('A4', $key))>). Undefined or 0 makes a private share that
no other process can open by key. As in 0.17, only digits make a number (at
most 4294967295 where a C<key_t> has 32 bits, the numbers from 2**31 up
being the negative keys of the same bits), and anything else is a string:
C<< -key => -1 >> is the key of the string C<'-1'>. The C<sharelite>
command reads its KEY the same way; the distribution's F<doc/FORMAT.md>
(section 7) gives the rule.

=item C<-create>

Create the share when it does not exist. 1, 'yes', 0 or 'no' (as for the other
flags).

=item C<-destroy>

Remove the share (segments and semaphores) when the object goes away. Only
the process and thread that created the object ever remove it; see
L</"FORK AND THREADS">.

=item C<-exclusive>

Fail when the share already exists.

=item C<-mode>

Permission bits of every segment and of the semaphore set of a share this
call creates, at most 0777; default 0666. The chain's later segments take the
share's bits (its first segment's, as the system reports them), whatever the
handle that adds them asked for, so a 0600 share stays private when another
process grows it. (A 0.17 process that grows a share gives the segments it
adds its own C<-mode>.) A number is taken as it is (C<0640>); a string of digits is
octal, as chmod(1) and C<sharelite put --mode> read it (C<'0640'>,
C<'640'>); nine characters are read as C<ls -l> shows them (C<'rw-r-----'>:
C<r>, C<w>, C<x> or C<-> in that order for the owner, the group and
others). A false mode (C<0>, C<'0'>, C<''>) means the default, as in 0.17;
C<'000'> and C<'---------'> are mode 0. Anything else, a number above 0777
included (the number C<640> is 01200: write C<0640> or C<'640'>), croaks C<Failed to
create share: Invalid argument (-mode ...)>, saying why.

Number or string is what perl knows of the value, as
C<builtin::created_as_string> tells it: C<0640> is a number, C<'640'> and
digits read from a file, the environment or the command line are strings,
also after being used as a number. Perls before 5.36 mark a number that was
printed or interpolated as a string too; there, a value that is both and is
written as a plain decimal number (no leading zero) is taken as the number,
as 0.17 took every C<-mode>.

=item C<-flags>

The exact C<shmget>/C<semget> flags (C<IPC_CREAT>, C<IPC_EXCL>, mode bits);
when given, C<-mode> is ignored.

=item C<-size>

Segment size in bytes for a new share, default 65536 (at most 16 also means
the default). A whole number, or one followed by a unit: C<k>, C<M> or C<G>,
in either case, for units of 1024 bytes, 1024**2 and 1024**3 (C<'100k'> is
102400 bytes, C<'4M'> 4194304). Anything else croaks C<Failed to create
share: Invalid argument (-size must be ...)>. Opening an existing share uses
that share's size, whatever is asked.

=back

The positional form takes any leading part of the list above (an eighth
argument, as 0.17 required, is taken as C<-glue>). The constructor
croaks with C<Failed to create share: E<lt>reasonE<gt>> on failure, with C<$!>
set.

=cut

sub new {
  my $class = shift;
  my $self = bless {}, ref $class || $class;
  my $args = _rearrange_args( [qw( key create destroy exclusive mode flags size glue )], \@_ );
  $self->_initialize( $args );
  return $self;
}

sub _rearrange_args {
  my ( $names, $params ) = @_;
  my %hash;
  return \%hash unless @$params;

  unless ( defined $params->[0] && $params->[0] =~ /^-/ ) {
    croak "unexpected number of parameters" if @$params > @$names;
    @hash{ @$names[ 0 .. $#$params ] } = @$params;
    return \%hash;
  }

  my %known = map { $_ => 1 } @$names;
  while ( @$params ) {
    my $param = lc substr( shift @$params, 1 );
    exists $known{$param} or croak "unexpected parameter '-$param'";
    $hash{$param} = shift @$params;
  }
  return \%hash;
}

sub _flag {
  my $v = shift;
  return 0 if !defined $v || lc $v eq 'no';
  return $v ? 1 : 0;
}

sub _fail_new {
  my ( $errno, $why ) = @_;
  $! = $errno;
  croak "Failed to create share: $!$why";
}

sub _initialize {
  my ( $self, $args ) = @_;

  $self->{key} = _key_from_string( $args->{key} || $args->{glue} || IPC_PRIVATE );

  $self->{create}    = _flag( $args->{create} )    ? IPC_CREAT              : 0;
  $self->{exclusive} = _flag( $args->{exclusive} ) ? IPC_EXCL | IPC_CREAT : 0;
  $self->{destroy}   = _flag( $args->{destroy} );

  $self->{flags} = $args->{flags} || 0;
  unless ( $args->{flags} ) {
    my ( $mode, $why ) = _parse_mode( $args->{mode} );
    _fail_new( Errno::EINVAL(), " (-mode $why)" ) if defined $why;
    $self->{mode} = defined $mode ? $mode : 0666;
  }
  $self->{flags} |= $self->{exclusive} | $self->{create} | ( $self->{mode} || 0 );

  my ( $size, $why ) = _parse_size( $args->{size} );
  _fail_new( Errno::EINVAL(), " (-size $why)" ) if defined $why;

  # The handle lives in the object's magic (xs/ShareLite.xs), which frees it
  # with the object; the core decides what that does (unlock, remove).
  _open( $self, $self->{key}, $size, $self->{flags}, $self->{destroy} ) or do {
    my $errno = $! + 0;
    my $why   = _last_error() . _size_refused( $self, $errno, $size, $args->{size} );
    $! = $errno;
    croak "Failed to create share: $why";
  };
  $self->{size} = _segment_size( $self );
  return 1;
}

# ---------------------------------------------------------------- keys, sizes, modes
#
# One parser each for -key, -size and -mode, used by new() and by the
# sharelite command, which reads its KEY, --size and --mode with them. They
# need nothing of the XS part (loaded at the end of this file), so the
# command can use them from a tree that is not built yet.

# The width of a key_t (32 bits on Linux, a long on the BSDs).
use constant _KEY_BITS => IPC::ShareLite::KeyT::KEY_BITS;

# -key as a SysV key, as 0.17 makes it (doc/FORMAT.md, section 7): undefined
# or empty is IPC_PRIVATE (0); a string of digits is that number, returned as
# given (up to the largest key_t read unsigned, 4294967295 on Linux: the
# numbers from 2**31 up are the negative key_t of the same bits); anything
# else of at most four characters, each at most 255, is the native int32 of
# its bytes, padded with spaces. So '-1' and '0x10' are strings, as in 0.17.
# Croaks with 0.17's messages, and "too large" for a number no key_t holds.
sub _key_from_string {
  my $s = shift;
  return 0 unless defined $s && length $s;
  if ( $s =~ /^\d+$/ ) {
    ( my $digits = $s ) =~ s/\A0+(?=\d)//;
    $digits =~ s/\n\z//;
    my $max = _KEY_BITS == 64 ? '18446744073709551615' : '4294967295';
    # Compared as strings: no float rounding.
    croak "Key $s is too large: a key_t has ${\ _KEY_BITS} bits"
     unless length $digits < length $max || ( length $digits == length $max && $digits le $max );
    return $s;
  }
  croak "Key must be a number or four character string" if length $s > 4;
  croak "$s is not 8-bit clean" if grep { ord > 255 } split //, $s;
  return unpack( 'i', pack( 'A4', $s ) );
}

# -size: a whole number of bytes, or one followed by k, M or G (powers of
# 1024, either case). Returns the bytes (0 when not given), or (undef, why)
# where why completes "-size ...".
my %UNIT = ( '' => 1, k => 1024, m => 1024**2, g => 1024**3 );

sub _parse_size {
  my $size = shift;
  return 0 unless defined $size && length $size;
  my $bytes;
  if ( $size =~ /^([0-9]+)([kKmMgG]?)\z/ ) {
    $bytes = $1 * $UNIT{ lc $2 };
  }
  elsif ( looks_like_number( $size ) && $size >= 0 && $size == int $size ) {
    $bytes = $size;
  }
  else {
    return ( undef, "must be a whole number of bytes, optionally followed by k, M or G: not '$size'" );
  }
  # Beyond what a size_t carries the kernel could not even be asked.
  return ( undef, "$size is larger than any segment" ) if $bytes >= 2**63;
  return $bytes;
}

# -mode: permission bits, 0 to 0777. A number is taken as it is (0640; so the
# number 640 is 01200, refused); a string is octal digits ('0640', '640'),
# as chmod(1) reads them, or nine characters read as ls shows them
# ('rw-r-----'). A false value (undefined, '', 0, '0') asks for the default
# 0666, as in 0.17; '000' and '---------' are mode 0. Returns the bits, undef
# for the default, or (undef, why) where why completes "-mode ...".
sub _parse_mode {
  my $mode = $_[0];
  return undef unless $mode;
  if ( $mode =~ /\A[r-][w-][x-][r-][w-][x-][r-][w-][x-]\z/ ) {
    my $bits = 0;
    $bits = $bits << 1 | ( $_ ne '-' ) for split //, $mode;
    return $bits;
  }
  my $bits;
  my $string = _created_as_string( $_[0] );
  if ( $string ) {
    $bits = oct $mode if $mode =~ /\A[0-7]+\z/;
  }
  elsif ( looks_like_number( $mode ) && $mode >= 0 && $mode == int $mode ) {
    $bits = $mode + 0;
  }
  return ( undef, "must be a number, an octal string such as '0640' or permissions such as 'rw-r-----': not '$mode'" )
   unless defined $bits;
  return $bits if $bits <= 0777;
  return ( undef, "'$mode' (octal) is beyond 0777, the permission bits" ) if $string;
  my $why = sprintf '%s (0%o in octal) is beyond 0777, the permission bits', $mode, $bits;
  # Perhaps the number 640 meant as octal: say how to write that.
  $why .= ": a number is taken as it is (for 0$mode, write 0$mode or '$mode')" if $mode =~ /\A[0-7]{1,3}\z/;
  return ( undef, $why );
}

# Was this value created as a string (true) or a number? As perl 5.36's
# builtin::created_as_string tells it, on every perl: by the SV's POK flag,
# which using a string as a number leaves on. Before 5.36, printing or
# interpolating a number turned POK on too (5.36 keeps it off), so there a
# value that is both, written as a plain decimal number, cannot be told
# apart: it is taken as the number, as 0.17 took every -mode.
our $_POK_MEANS_STRING = $] >= 5.036;    # the tests set it to check the older rule

sub _created_as_string {
  require B;
  my $flags = B::svref_2object( \$_[0] )->FLAGS;
  return 0 unless $flags & B::SVf_POK();
  return 1 if $_POK_MEANS_STRING;
  return !( $flags & ( B::SVf_IOK() | B::SVf_NOK() ) && $_[0] =~ /\A(?:0|[1-9][0-9]*)\z/ );
}

# What a refused creation says about the size: the size asked for, and the
# limit of the system most likely in the way (shmget(2)). Empty when nothing
# was being created, or the error is not one a size causes.
sub _size_refused {
  my ( $self, $errno, $bytes, $asked ) = @_;
  return '' unless $self->{flags} & IPC_CREAT;
  my $what = 'the default size, 65536 bytes';
  if ( $bytes > 16 ) {
    $what = "-size $asked";
    $what .= " ($bytes bytes)" if $asked ne $bytes;
  }
  if ( $errno == Errno::EINVAL() ) {
    # Also what semget says when the key holds a set of fewer than 3
    # semaphores: nothing to do with the size then.
    if ( $self->{key} ) {
      local $!;
      return '' if !defined semget( $self->{key}, 3, 0 ) && $! == Errno::EINVAL();
    }
    return " ($what: more than the system allows one segment, its limit shmmax" . _limit( 'shmmax', ' bytes' ) . ')';
  }
  if ( $errno == Errno::ENOSPC() ) {
    return " ($what: a limit of the system is reached, on shared memory in all (shmall"
     . _limit( 'shmall', ' pages' ) . '), on the number of segments (shmmni' . _limit( 'shmmni', '' )
     . ') or on the number of semaphore sets (semmni))';
  }
  if ( $errno == Errno::ENOMEM() ) {
    return " ($what: the system has no memory for it, or its limit on shared memory in all (shmall"
     . _limit( 'shmall', ' pages' ) . ') is reached)';
  }
  return '';
}

# ": N<unit> here" for a limit Linux lets us read, else nothing.
sub _limit {
  my ( $name, $unit ) = @_;
  open my $fh, '<', "/proc/sys/kernel/$name" or return '';
  my $v = <$fh>;
  return defined $v && $v =~ /\A(\d+)\s*\z/ ? ": $1$unit here" : '';
}

=head2 C<< store( $scalar ) >>

Stores C<$scalar> (its bytes; C<undef> stores the empty string) and returns 1.
Segments are added and removed as the length changes. A string with
characters above 255 croaks C<Wide character>; any other failure croaks
C<IPC::ShareLite store() error: E<lt>reasonE<gt>> with C<$!> set. A failed
store leaves the old value in place and no lock held.

A reference is stored as its address (C<HASH(0x...)>), as in 0.17, which no
other process can use: under C<use warnings> that warns (category C<misc>),
unless the object overloads stringification. To store a reference,
serialize it yourself, e.g. with L<Storable>:

    $share->store( freeze( \%hash ) );
    my $hash = thaw( $share->fetch );

=head2 C<< fetch >>

Returns the stored value, or the empty string if nothing was stored. Croaks
C<IPC::ShareLite fetch() error: E<lt>reasonE<gt>> on failure, for example when
the share's header is corrupted. Fetching a value nothing has changed since
this object's last fetch returns it without copying it again: the object keeps
the last value of 4 KB or more that it fetched (sharing its memory with the
copy it returned, copy-on-write) until its next fetch or its end.

=head2 C<< lock( $type, $timeout ) >>

Takes a lock; C<$type> takes the flock(2) flags C<LOCK_EX> (the default),
C<LOCK_SH>, C<LOCK_NB>, C<LOCK_UN>. Returns 1 on success, 0 when C<LOCK_NB>
was given and the lock is held elsewhere, or when C<$timeout> seconds
(fractions allowed) passed first, and C<undef> on error with C<$!> set
(C<EINVAL> for contradictory flags such as C<LOCK_EX|LOCK_SH>).

Any number of processes can hold the shared lock at once; the exclusive lock
excludes everyone else. Asking for the other kind than the one held releases
the one held first. The locks are advisory. The kernel releases the locks of
a process that dies.

=head2 C<< unlock >>

Releases the lock held, if any (the same as C<lock(LOCK_UN)>). Returns 1, or
C<undef> on error.

=head2 C<< version >>

A number that is 1 when the share is created and grows by one with every
store, by any process.

=head2 C<< num_segments >>

The number of segments the share uses now. C<< $share->size *
$share->num_segments >> is about its memory use.

=head2 C<< key >>, C<< create >>, C<< exclusive >>, C<< flags >>, C<< mode >>, C<< size >>

The key (as an integer), the create flag (C<IPC_CREAT> or 0), the exclusive
flag (C<IPC_EXCL|IPC_CREAT> or 0), the flags used, the mode (C<undef> when
C<-flags> was given) and the real segment size.

=head2 C<< destroy( [$flag] ) >>

Gets or sets the destroy flag.

=head2 C<< remove >>

Removes the share now, whatever the destroy flag: every segment and the
semaphore set; returns 1 (croaks C<IPC::ShareLite remove() error: ...> on
failure). Later calls on the object fail with C<$!> set to C<EIDRM>: C<store>
and C<fetch> croak, C<lock>, C<unlock>, C<version> and C<num_segments> return
C<undef>.

=head2 C<< shlock( $type, $timeout ) >>, C<< shunlock >>

The names C<lock> and C<unlock> had before 0.03, kept (and still deprecated)
so that old scripts run: the same as C<lock> and C<unlock>.

=cut

sub shlock   { shift->lock( @_ ) }
sub shunlock { shift->unlock( @_ ) }

sub key       { $_[0]->{key} }
sub create    { $_[0]->{create} }
sub exclusive { $_[0]->{exclusive} }
sub flags     { $_[0]->{flags} }
sub mode      { $_[0]->{mode} }
sub size      { $_[0]->{size} }

sub destroy {
  my $self = shift;
  if ( @_ ) {
    $self->{destroy} = shift;
    _set_destroy( $self, _flag( $self->{destroy} ) );
  }
  return $self->{destroy};
}

# Last, after every other statement of the file has run: should the XS part
# be missing (a tree not built yet), the argument parsers above still work.
XSLoader::load( 'IPC::ShareLite', $VERSION );

1;

__END__

=head1 EXPORTS

Nothing by default. On request:

=over

=item C<:lock> and C<:flock>

C<LOCK_EX>, C<LOCK_SH>, C<LOCK_UN> and C<LOCK_NB> (from L<Fcntl>), the flags
C<lock> takes.

=item C<:all>

The four above and C<IPC_CREAT>, C<IPC_EXCL>, C<IPC_RMID> and C<IPC_PRIVATE>
(from L<IPC::SysV>), for C<-flags> and C<-key>.

=item C<IPC_STAT>, C<GETVAL>, C<SETVAL>, C<GETALL>, C<SEM_UNDO>

The L<IPC::SysV> constants of those names. These, and every name in the tags,
can also be imported one by one (C<@EXPORT_OK>).

=item C<IPC_STATE>

The value of C<IPC_STAT>. 0.17 offered this misspelt name for export; it stays
so that scripts that import it compile. Use C<IPC_STAT>.

=back

    use IPC::ShareLite qw( :lock );             # LOCK_EX and friends
    use IPC::ShareLite qw( :all );              # ... and IPC_CREAT and friends
    use IPC::ShareLite qw( IPC_PRIVATE LOCK_SH );

=head1 ERRORS

The constructor, C<store>, C<fetch> and C<remove> croak; C<lock>, C<unlock>,
C<version> and C<num_segments> return C<undef>. In every case C<$!> holds the
system's error number, and the croak text says why:

=over

=item C<Failed to create share: No such file or directory>

No share at that key, and C<-create> was not given.

=item C<Failed to create share: File exists>

C<-exclusive> was given and the share exists; or the key holds a segment that
is not the head of a share (a data segment 0.17 chained at that key), which is
left alone.

=item C<Failed to create share: Permission denied>

The share's mode does not allow this user what C<-mode> asks for.

=item C<Failed to create share: Invalid argument>

A C<-size> the system refuses, beyond its largest segment (C<shmmax>): the
message names the size and the limit (C<Failed to create share: Invalid
argument (-size 2M (2097152 bytes): more than the system allows one segment,
its limit shmmax: 1048576 bytes here)>). Or a C<-size> or C<-mode> this
module cannot read (C<'1.5M'>, C<'rw-r--r'>, C<640>), in which case the
message says what it takes and nothing is created.

=item C<IPC::ShareLite store() error: Wide character in store>

The string has characters above 255. Encode it first (C<Encode::encode_utf8>).

=item C<IPC::ShareLite store() error: Value too large for defined data type>

Longer than 2**31-1 bytes, the most the format can describe. Nothing was
changed.

=item C<IPC::ShareLite fetch() error: Bad message (corrupted share: ...)>

The share's header or chain is damaged (a loop, a length past the end, a
missing or foreign segment). Nothing was changed; a store repairs what it can.

=item C<... error: Identifier removed>, C<... error: Invalid argument>

The share is gone: its segments and semaphore set were removed while this
object still used them. C<Identifier removed> (C<EIDRM>) comes from this
object's own C<remove>, and from a call that was waiting for the lock when
the share went. C<Invalid argument> (C<EINVAL>) comes from calls made after
another process removed it, as with 0.17: by C<remove> or C<sharelite rm>,
by C<ipcrm>, or by systemd-logind, which with C<RemoveIPC=yes> (systemd's
default) removes every SysV object of a user who is not a system user when
that user's last login session ends, also while the user's cron jobs or
services still use them.

Open the share again (C<new>, with C<-create> if this program may make it
anew). Against logind, run the program as a system user (whose objects
logind never removes), or set C<RemoveIPC=no> in
F</etc/systemd/logind.conf> and restart C<systemd-logind>.

=item C<No space left on device>, C<Cannot allocate memory>

The system's limits on segments (C<shmmni>), on shared memory in all
(C<shmall>) or on semaphore sets (C<semmni>) are reached, or the memory is
not there. When C<new> was creating the share, the message names the size
asked for and the limits most likely in the way (C<Failed to create share:
No space left on device (-size 8192: a limit of the system is reached, ...)>).
A store that fails this way leaves the old value in place, and removes every
segment it had created: the system holds exactly what it held before the
call.

=back

A signal that arrives while a call waits for a lock runs its Perl handler; a
handler that dies (the C<alarm> idiom) ends the wait, and nothing is left
locked.

=head1 FORK AND THREADS

A forked child can use the parent's objects. Only the process that created an
object removes the share when the object goes away with C<-destroy> on, so a
child exiting never removes its parent's share; call L</remove> to remove it
on purpose. Locks are taken per process: a child does not hold its parent's
locks in the kernel's eyes, so do not rely on them across C<fork>.

Objects are thread-safe: each new thread gets its own handle on the same share
(made when the thread starts), and only the creating thread removes the share.

=head1 COMPATIBILITY WITH 0.17

Scripts written for 0.17 run unchanged: same constructor arguments, methods,
return values, messages (with the reason added) and exports.

The in-memory format and the locking protocol are 0.17's too (the
distribution's F<doc/FORMAT.md> describes them), so processes running 0.17
and processes running this version can use one share at the same time, locks
included, and either can create, read, write or remove it. Two
things to know when mixing them:

=over

=item * A 0.17 process cannot open an existing share when it asks for a
larger C<-size> than the share has (the default is 65536): give it the size
the share was created with. This version opens any existing share.

=item * 0.17 chains extra segments at the keys after the share's own, so a
share that 0.17 grew occupies key+1, key+2, ...; this version refuses to open
such a key as a share rather than corrupting the data in it.

=back

=head1 DIFFERENCES FROM 0.17

=over

=item * Extra segments are created with private keys: a share never occupies
the keys after its own (0.17 uses key+1, key+2, ..., and opening one of those
keys corrupted the share). Opening a key that holds a 0.17 data segment fails
instead of corrupting it. Private shares create nothing under a public key.

=item * C<lock(LOCK_UN)> really forgets the lock; the next C<lock()> locks.

=item * A forked child or a thread never removes the share of the object it
inherited; C<remove> removes it on purpose.

=item * The positional form of C<new> works with any leading part of its list.

=item * Opening an existing share works whatever C<-size> asks; C<size> tells
the real segment size.

=item * No error path leaves a lock held; errors say why
(C<Failed to create share: No such file or directory>).

=item * A corrupted or hostile header (a loop in the chain, a length past its
end, a dangling or foreign segment) makes C<fetch> croak at once; reading
never creates a segment.

=item * Strings with characters above 255 croak instead of storing a truncated
value; UTF-8 flagged strings that fit in bytes are stored as bytes.

=item * A writer killed in the middle of a store leaves a chain every process
can keep using; a dangling link left by a killed 0.17 writer is repaired by
the next store. A segment such a writer was chaining is removed with the
share (C<remove>); one whose share is already gone (removed by 0.17, by
C<ipcrm>, or by a process killed while removing) is found by C<sharelite gc>
and removed by C<sharelite gc --remove>. A store that fails at a system limit
removes the segments it created.

=item * C<lock> takes an optional timeout, and warns about nothing.

=item * C<-size> takes units (C<'100k'>, C<'4M'>, C<'1G'>) and C<-mode>
permissions as C<ls> shows them (C<'rw-r-----'>) or octal digits in a
string (C<'0640'> or C<'640'>, which 0.17 read as the decimal 640, mode
01200); malformed values and modes beyond 0777 croak instead of meaning
something else.

=item * The share is faster: the methods are XS, segments stay attached, and a
fetch copies once.

=back

=head1 SECURITY

The default mode 0666 is kept for compatibility: any local user can read and
write the share. Pass C<< -mode => 0600 >> unless other users must see it.

=head1 BUGS

Report bugs to the maintainers (the address in the distribution's META
files) with the version, C<uname -a>, the output of C<ipcs -m -s -l> and a
script that shows the problem. Known limits, as in 0.17: a value is at most
2**31-1 bytes; the locks are advisory (a process that does not ask for them
is not kept out); and a share lives until it is removed, also when every
process that used it has gone (C<sharelite rm>, C<ipcrm>).

An unchanged value is handed out again without copying when the share's
version, length and chain state are those of the handle's last fetch. A 0.17
writer killed between the two header writes that end its store (the length,
then the version), storing a value as long as the one before, leaves the
header as it was over the new bytes: a handle that fetched the old value
keeps returning it until the next store. Writers of this version are not
affected (doc/FORMAT.md, "Unchanged values are not copied again").

=head1 PORTABILITY

The Rust core's syscall layer holds every difference between systems: the
key type (C<key_t>, 32 bits on Linux, macOS and Solaris, 64 on the BSDs), the
C<sembuf>, C<union semun> and C<shmid_ds> layouts and the semaphore constants
where the Rust C<libc> crate lacks them, errno access, the "removed" flag of a
segment, timed waits and the list of segments. The format is native-endian on
every host, as 0.17's is: a four-character key is its bytes read as the
host's C<int32>.

B<Run>, with the whole test suite (the interop tests against that
architecture's own Debian build of 0.17): Linux on x86-64, i386 (a perl with
64-bit IV and 32-bit pointers), arm64 and s390x (64-bit big-endian; these two
under qemu-user).

B<Type-checked only> (the Rust code compiles against each system's C
library definitions; nothing was linked or run): FreeBSD, NetBSD and OpenBSD
on x86-64, macOS on x86-64 and arm64, Solaris and illumos on x86-64. What the
code assumes there comes from their headers and kernel sources:
C<SEM_UNDO> 010000, C<GETVAL> 5 and C<SETVAL> 8 (the classic values), C<IPC_STAT>
12 on Solaris and illumos, NetBSD's C<semctl> being its C<__semctl50>, the
"removed" bit of C<shm_perm.mode> (0x0400 on FreeBSD and NetBSD, 0x0200 on
OpenBSD; macOS never shows it, as xnu refuses C<IPC_STAT> and C<shmat> on a
segment marked removed, and on Solaris and illumos a removed segment's id
goes at once), macOS's C<shmid_ds> packed to 4 bytes, and the lists of segments
(FreeBSD's C<kern.ipc.shmsegs> sysctl, Solaris' and illumos' C<shmids(2)>).
NetBSD, OpenBSD and macOS have no list here, so a chain segment orphaned by a
writer killed in the middle of a store is not swept there (C<ipcrm -m>
removes it).

A C<< lock( $type, $timeout ) >> timeout waits in the kernel (C<semtimedop(2)>) on Linux only.
Elsewhere it makes non-blocking attempts with sleeps of 1 ms, 2 ms, 4 ms...
at most 50 ms between them: it gives up no earlier than the timeout, may see a
freed lock up to 50 ms late, and holds no place in the kernel's queue, so
blocking waiters can overtake it.

F<Makefile.PL> writes no Makefile and exits 0 with "OS unsupported" on other
systems (native Windows has no SysV IPC), which CPAN testers report as NA.

The test suite sees SysV objects only through L<IPC::ShareLite::Inspect>'s
listing (F</proc/sysvipc> where it can be read, C<ipcs> elsewhere), never
through F</proc> directly, and takes key widths from its C<KEY_BITS>. What
only Linux gives (the F</proc> listing itself, private namespaces through
C<unshare>, choosing pids) skips elsewhere, saying why, as does a check the
system cannot answer (the "removed" bit where C<ipcs> does not show it) and a
test that needs more than the system's limits allow (found by trying, the
limit named). This was tried on Linux made to look like another Unix
(C<other-unix.sh> of the project's cross tools, run by its CI): F</proc/sysvipc>
hidden under an empty tmpfs, the Linux-only commands C<unshare>, C<nsenter>
and C<setpriv> failing as missing ones, a private IPC namespace; then also
with macOS's default limits (C<shmmax> 4 MiB, C<shmmni> 32, C<shmall> 1024
pages, 87 semaphores, 5 operations a call, and 8 attached segments a process
through a preloaded C<shmat> that fails with EMFILE), and as user nobody. Not
simulated: the BSDs' 64-bit C<key_t>, the other systems' C<ipcs> output (parsed
from samples in the tests), and anything else of their kernels.

Where a process may have only a few segments attached at once (macOS:
C<kern.sysv.shmseg>, 8 by default; the BSDs: C<kern.ipc.shmseg>), the module
keeps within the limit: when the system refuses an attachment, objects not in
a call let go of theirs, and a call attaches the segments it uses again,
letting go of its own others when refused. Beyond the number kept between
calls (half of what was held when the system first refused; on macOS, half of
C<kern.sysv.shmseg> from the start) each call pays one C<shmat> and C<shmdt>
per segment it uses. Under macOS's defaults one process can so hold 20 shares
and use each, or store a 1 MB value in 16 segments. Threads of one process
that are in calls at the same moment share the limit: a call that finds
every attachment held by other threads' calls fails with "Too many open
files" (C<EMFILE>). C<kern.sysv.shmmni>, 32 segments in all on macOS by
default, still bounds how many shares and how long a value fit.

=head1 LICENSE

This library is free software; you can redistribute it and/or modify it under
the same terms as Perl itself: either the GNU General Public License as
published by the Free Software Foundation, version 1 or (at your option) any
later version, or the Artistic License. The F<LICENSE> file of the
distribution has both texts.

=head1 AUTHOR

The IPC::ShareLite 0.17 API and format are by Maurice Aubrey and Andy
Armstrong. This implementation is a rewrite with a Rust core.

This module is free software; you may redistribute it and/or modify it under
the same terms as Perl itself.

=head1 SEE ALSO

L<IPC::SysV>, shmget(2), semop(2).

=cut
