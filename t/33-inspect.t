# IPC::ShareLite::Inspect: key_t values (signed and unsigned, 64 bits on
# the BSDs; t/34 covers how -key becomes a key), whether
# a key is in use, the SysV listing (the default source on every system: the head,
# a private segment, the semaphore set, the "removed" bit where the system
# shows it), from /proc/sysvipc and from the real ipcs compared object by
# object, what an ipcs cuts short taken from IPC_STAT (names that do not
# resolve, Solaris' cut names, macOS' modes), the ipcs parser on sample output of FreeBSD,
# NetBSD/OpenBSD, macOS, Solaris/illumos and util-linux. (What the core
# sees from outside, chains and orphans, is t/28-look-from-outside.t.)
# Every object is created here, known by its id, and removed at the end.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SLTest qw(new_key settled);
use Errno ();
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_EXCL IPC_RMID);
use POSIX ();
use File::Temp ();
use IPC::ShareLite::Inspect qw(:all);

my ( @SHM, @SEM );    # every object this file created, by id
END {
  shmctl( $_, IPC_RMID, 0 ) for @SHM;
  semctl( $_, 0, IPC_RMID, 0 ) for @SEM;
}

# A key with nothing at it (another one if something is there).
sub free_key {
  for ( 1 .. 50 ) {
    my $k = new_key( 1 );
    return $k unless key_in_use( $k );
  }
  die "no free key";
}

sub segment {
  my ( $key, $size, $mode ) = @_;
  my $id = shmget( $key, $size, IPC_CREAT | IPC_EXCL | ( $mode || 0600 ) );
  die "shmget: $!" unless defined $id;
  push @SHM, $id;
  return $id;
}

# ------------------------------------------------------------ keys

{
  is( signed_key( ~1 ), -2, 'signed_key of all bits but the lowest' );
  is( signed_key( 0xfffffffe ), KEY_BITS == 32 ? -2 : 4294967294, 'signed_key of 0xfffffffe' );
  is( signed_key( 5 ), 5, 'signed_key of a small key' );
}

# A 64-bit key_t (the BSDs), in a perl that takes itself for FreeBSD.
SKIP: {
  require Config;
  skip 'a 32-bit perl', 1 unless $Config::Config{longsize} == 8;
  ( my $lib = $INC{'IPC/ShareLite/Inspect.pm'} ) =~ s{/IPC/ShareLite/Inspect\.pm\z}{};
  my $code = <<'EOC';
BEGIN { $^O = 'freebsd' }
use IPC::ShareLite::Inspect qw(:all);
my @r = ( KEY_BITS, unsigned_key( -2 ), signed_key( 18446744073709551614 ) );
print join( ',', @r ), "\n";
EOC
  open my $fh, '-|', $^X, "-I$lib", '-e', $code or die "perl: $!";
  my $out = <$fh>;
  close $fh;
  is( $out, join( ',', 64, 18446744073709551614, -2 ) . "\n", 'a 64-bit key_t: unsigned_key and signed_key on 64 bits' );
}

# key_in_use: a segment or a semaphore set at the key, each alone; never IPC_PRIVATE.
{
  my $k = free_key();
  ok( !key_in_use( $k ), 'key_in_use: a free key is not in use' );
  my $id = segment( $k, 4096 );
  ok( key_in_use( $k ), '... a segment at the key is' );
  shmctl( $id, IPC_RMID, 0 ) or die "shmctl: $!";
  ok( !key_in_use( $k ), '... not once the segment is removed' );
  my $semid = semget( $k, 3, IPC_CREAT | IPC_EXCL | 0600 ) // die "semget: $!";
  push @SEM, $semid;
  ok( key_in_use( $k ), '... a semaphore set at the key is' );
  semctl( $semid, 0, IPC_RMID, 0 ) or die "semctl: $!";
  ok( !key_in_use( $k ), '... not once the set is removed' );
  segment( IPC_PRIVATE, 4096 );
  ok( !key_in_use( IPC_PRIVATE ), '... IPC_PRIVATE never is' );
}

# ------------------------------------------------------------ objects to list

my $K = free_key();
my $H = segment( $K, 4096 );
my ( $C1, $C2 ) = map { segment( IPC_PRIVATE, 4096 ) } 1, 2;
is( segment_stat( $H )->{cpid}, $$, 'segment_stat: cpid' );
is( segment_stat( $H )->{mode} & 0777, 0600, 'segment_stat: mode' );
# qemu-user writes IPC_STAT's mode 16 bits wide: on s390x the bits land in the
# upper half of the 32-bit field, and are moved back (a no-op elsewhere).
is_deeply( [ map { IPC::ShareLite::Inspect::_perm_mode( $_ ) } 01640 << 16, 01640, 0 ], [ 01640, 01640, 0 ],
  'the mode from IPC_STAT, as a real kernel and as qemu-user write it' );
is( segment_stat( $H )->{segsz}, 4096, 'segment_stat: size' );

# ------------------------------------------------------------ listing

my $S = semget( $K, 3, IPC_CREAT | IPC_EXCL | 0640 );
die "semget: $!" unless defined $S;
push @SEM, $S;

# The listing as everything else reads it (the default source: /proc/sysvipc
# where it can be read, ipcs elsewhere), on every system.
{
  my ( $h ) = @{ settled( sub { [ grep { $_->{id} == $H } list_segments() ] }, sub { $_[0][0] && !$_[0][0]{nattch} } ) };
  is_deeply( [ @{ $h || {} }{qw(key mode size nattch cpid uid)} ], [ $K, 0600, 4096, 0, $$, $< ],
    'list_segments: the head, its key, mode, size, attachments, creator and owner' );
  my ( $c ) = grep { $_->{id} == $C1 } list_segments();
  is( $c && $c->{key}, 0, 'list_segments: a private segment, at key 0' );
  my ( $s ) = grep { $_->{id} == $S } list_semaphores();
  is_deeply( [ @{ $s || {} }{qw(key mode nsems uid)} ], [ $K, 0640, 3, $< ], 'list_semaphores: the set' );

  my $R = segment( IPC_PRIVATE, 4096 );
  my $addr = IPC::SysV::shmat( $R, undef, 0 ) // die "shmat: $!";
  shmctl( $R, IPC_RMID, 0 ) or die "shmctl: $!";
  my ( $r ) = grep { $_->{id} == $R } list_segments();
  SKIP: {
    skip 'this system lists no segment marked for removal', 1 unless $r;
    skip "this system's listing does not tell whether a segment is marked for removal", 1 unless defined $r->{removed};
    is( $r->{removed}, 1, 'list_segments: a segment marked for removal and still attached is removed' );
  }
  IPC::SysV::shmdt( $addr ) == 0 or die "shmdt: $!";
}

# What an ipcs cuts short comes from IPC_STAT: an ipcs of Solaris' format
# listing this file's head and semaphore set with owner names cut to 8
# characters that do not resolve, and group names that do not either.
{
  my $dir = File::Temp::tempdir( 'inspect.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
  my $X   = segment( IPC_PRIVATE, 4096, 0700 );
  my $hex = sprintf '0x%x', unsigned_key( $K );
  my $fake = sub {
    my ( $owner, $group ) = @_;
    open my $fh, '>', "$dir/ipcs" or die "$dir/ipcs: $!";
    print {$fh} <<"EOS";
#!/bin/sh
cat <<'EOT'
IPC status from <running system> as of Wed Dec  2 06:00:00 UTC 2026
T         ID      KEY        MODE        OWNER    GROUP  CREATOR   CGROUP NATTCH      SEGSZ  CPID  LPID   ATIME    DTIME    CTIME
Shared Memory:
m  $H  $hex --rw------- $owner $group $owner $group 0 4096 $$ $$ no-entry no-entry 9:01:01
m  $X  0x0 --rw------- $owner $group $owner $group 0 4096 $$ $$ no-entry no-entry 9:01:01
T         ID      KEY        MODE        OWNER    GROUP  CREATOR   CGROUP NSEMS   OTIME    CTIME
Semaphores:
s  $S  $hex --ra-r----- $owner $group $owner $group 3 no-entry 10:01:01
EOT
EOS
    close $fh or die "$dir/ipcs: $!";
    chmod 0755, "$dir/ipcs" or die "chmod: $!";
  };
  my $ids = sub {
    my ( $row ) = @_;
    return [ @{ $row || {} }{qw(uid gid cuid cgid mode)} ];
  };
  my $seg  = segment_stat( $H ) or die "IPC_STAT: $!";
  my $want = [ @$seg{qw(uid gid cuid cgid)} ];
  $fake->( 'nosuchus', 'nosuchgr' );
  my %shm = map { $_->{id} => $_ } list_segments( source => 'ipcs', ipcs => "$dir/ipcs" );
  is_deeply( $ids->( $shm{$H} ), [ @$want, 0600 ], 'ipcs with names that do not resolve: owners and groups from IPC_STAT' );
  my ( $set ) = grep { $_->{id} == $S } list_semaphores( source => 'ipcs', ipcs => "$dir/ipcs" );
  is_deeply( $ids->( $set ), [ @$want, 0640 ], '... for a semaphore set too (semctl IPC_STAT)' );
  is( $shm{$X}{mode}, 0600, 'ipcs without execute bits: the mode as ipcs shows it, elsewhere than macOS' );
  {
    local $^O = 'darwin';
    my ( $x ) = grep { $_->{id} == $X } list_segments( source => 'ipcs', ipcs => "$dir/ipcs" );
    is( $x && $x->{mode}, 0700, '... on macOS (no execute bits in its ipcs) the mode from IPC_STAT' );
  }
  SKIP: {
    my $other = getpwuid( $seg->{uid} == 0 ? 1 : 0 );
    skip 'no second user name to cut short', 2 unless defined $other && length $other <= 8;
    $fake->( $other, 'nosuchgr' );
    my ( $h ) = grep { $_->{id} == $H } list_segments( source => 'ipcs', ipcs => "$dir/ipcs" );
    is( $h && $h->{uid}, scalar getpwnam( $other ), "an owner name that resolves: its uid, elsewhere than Solaris" );
    local $^O = 'solaris';
    ( $h ) = grep { $_->{id} == $H } list_segments( source => 'ipcs', ipcs => "$dir/ipcs" );
    is( $h && $h->{uid}, $seg->{uid}, '... on Solaris and illumos (names cut to 8 characters) the uid from IPC_STAT' );
  }
}
SKIP: {
  skip 'no /proc/sysvipc here', 4 unless -r '/proc/sysvipc/shm';
  my ( $h ) = @{ settled( sub { [ grep { $_->{id} == $H } list_segments( source => 'proc' ) ] }, sub { $_[0][0] && !$_[0][0]{nattch} } ) };
  is_deeply( $h, { id => $H, key => $K, mode => 0600, removed => 0, size => 4096, nattch => 0, cpid => $$,
      lpid => $h->{lpid}, uid => $<, gid => $h->{gid}, cuid => $>, cgid => $h->{cgid} },
    'list_segments (proc): the head' );
  my ( $s ) = grep { $_->{id} == $S } list_semaphores( source => 'proc' );
  is_deeply( [ @$s{qw(key mode nsems uid)} ], [ $K, 0640, 3, $< ], 'list_semaphores (proc): the set' );
  ok( ( grep { $_->{id} == $C1 && $_->{key} == 0 } list_segments() ), 'default source finds the private segment' );
  ok( ( grep { $_->{shmid} == $H } proc_rows( 'shm' ) ), 'proc_rows: raw rows' );
}

SKIP: {
  my $ipcs = grep { -x "$_/ipcs" } split /:/, $ENV{PATH};
  skip 'no ipcs in PATH', 4 unless $ipcs;
  skip 'no /proc/sysvipc to compare with', 4 unless -r '/proc/sysvipc/shm';
  # /proc read just before and just after ipcs: a process that attaches one
  # of them meanwhile (a listing of every share, run by another test) changes
  # its last pid.
  my %before = map { $_->{id} => $_ } list_segments( source => 'proc' );
  my %ipcs   = map { $_->{id} => $_ } list_segments( source => 'ipcs' );
  my %after  = map { $_->{id} => $_ } list_segments( source => 'proc' );
  my @mine = ( $H, $C1, $C2 );
  ok( !grep( { !$ipcs{$_} } @mine ), 'ipcs lists every segment of ours' );
  my @diff;
  for my $id ( @mine ) {
    for my $f ( sort keys %{ $ipcs{$id} } ) {
      next unless defined $ipcs{$id}{$f};
      my @proc = grep { defined } map { $_->{$id}{$f} } \%before, \%after;
      push @diff, "$id.$f: ipcs $ipcs{$id}{$f}, proc " . ( join( ' then ', @proc ) || 'undef' )
        unless grep { $_ == $ipcs{$id}{$f} } @proc;
    }
  }
  is_deeply( \@diff, [], 'what ipcs tells about them is what /proc tells' ) or diag explain $ipcs{$H};
  ok( defined $ipcs{$H}{cpid} && defined $ipcs{$H}{uid} && defined $ipcs{$H}{size}, 'ipcs gave pid, owner and size' );
  my %isem = map { $_->{id} => $_ } list_semaphores( source => 'ipcs' );
  is_deeply( [ @{ $isem{$S} || {} }{qw(key mode nsems uid)} ], [ $K, 0640, 3, $< ], 'list_semaphores (ipcs): the set' );
}

# ------------------------------------------------------------ the ipcs parser on each flavour

my $root_gid = getgrnam( 'root' );
my $wheel    = getgrnam( 'wheel' );
my @ipcs_cases = (
  [ 'FreeBSD ipcs -a', <<'EOT', 1668246881, 0, 1, $root_gid ],
Message Queues:
T           ID          KEY MODE        OWNER    GROUP    CREATOR  CGROUP                 CBYTES                 QNUM               QBYTES        LSPID        LRPID STIME    RTIME    CTIME   

Shared Memory:
T           ID          KEY MODE        OWNER    GROUP    CREATOR  CGROUP         NATTCH        SEGSZ         CPID         LPID ATIME    DTIME    CTIME   
m        65536   1668246881 --rw-rw---- root     root     root     root                0         4096         1201         1202 10:01:02 10:01:02 10:01:01
m        65537            0 --rw------- 1001     root     1001     root                2        65536         1201         1301 no-entry no-entry  9:01:01

Semaphores:
T           ID          KEY MODE        OWNER    GROUP    CREATOR  CGROUP          NSEMS OTIME    CTIME   
s        65536   1668246881 --rw-rw---- root     root     root     root                3 10:01:02 10:01:01

EOT
  [ 'NetBSD / OpenBSD ipcs -a', <<'EOT', 1668246881, 0, 1, $wheel ],
Message Queues:
T        ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP CBYTES  QNUM QBYTES LSPID LRPID    STIME    RTIME    CTIME

Shared Memory:
T        ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP NATTCH   SEGSZ  CPID  LPID    ATIME    DTIME    CTIME
m     65536 1668246881 --rw-rw----     root    wheel     root    wheel      0    4096  1201  1202 10:01:02 10:01:02 10:01:01
m     65537          0 --rw-------     1001    wheel     1001    wheel      2   65536  1201  1301 no-entry no-entry  9:01:01

Semaphores:
T        ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP NSEMS    OTIME    CTIME
s     65536 1668246881 --rw-rw----     root    wheel     root    wheel     3 10:01:02 10:01:01

EOT
  [ 'macOS ipcs -a', <<'EOT', 1668246881, 0, 1, $wheel ],
IPC status from <running system> as of Wed Dec  2 06:00:00 UTC 2026
T     ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP CBYTES  QNUM QBYTES LSPID LRPID   STIME    RTIME    CTIME
Message Queues:

T     ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP NATTCH  SEGSZ  CPID  LPID   ATIME    DTIME    CTIME
Shared Memory:
m  65536 0x636f6d61 --rw-rw----     root    wheel     root    wheel      0   4096  1201  1202 10:01:02 10:01:02 10:01:01
m  65537 0x00000000 --rw-------     1001    wheel     1001    wheel      2  65536  1201  1301 no-entry no-entry  9:01:01

T     ID     KEY        MODE       OWNER    GROUP  CREATOR   CGROUP NSEMS   OTIME    CTIME
Semaphores:
s  65536 0x636f6d61 --ra-ra----     root    wheel     root    wheel      3 10:01:02 10:01:01

EOT
  [ 'Solaris / illumos ipcs -a', <<'EOT', 1668246881, 1, 1, $root_gid ],
IPC status from <running system> as of Wed Dec  2 06:00:00 UTC 2026
T         ID      KEY        MODE        OWNER    GROUP  CREATOR   CGROUP CBYTES  QNUM QBYTES LSPID LRPID   STIME    RTIME    CTIME
Message Queues:
T         ID      KEY        MODE        OWNER    GROUP  CREATOR   CGROUP NATTCH      SEGSZ  CPID  LPID   ATIME    DTIME    CTIME
Shared Memory:
m      65536   0x636f6d61 --rw-rw----     root     root     root     root      0       4096  1201  1202 10:01:02 10:01:02 10:01:01
m      65537   0x0        D-rw-------     1001     root     1001     root      2      65536  1201  1301 no-entry no-entry  9:01:01
T         ID      KEY        MODE        OWNER    GROUP  CREATOR   CGROUP NSEMS   OTIME    CTIME
Semaphores:
s      65536   0x636f6d61 --ra-ra----     root     root     root     root     3 10:01:02 10:01:01
EOT
);
for my $c ( @ipcs_cases ) {
  my ( $name, $text, $key, $removed_flag, $has_pids, $gid ) = @$c;
  my $p = parse_ipcs( $text );
  is_deeply(
    $p->{shm},
    [ { id => 65536, key => $key, mode => 0660, removed => undef, size => 4096, nattch => 0, cpid => 1201, lpid => 1202,
        uid => 0, gid => $gid, cuid => 0, cgid => $gid },
      { id => 65537, key => 0, mode => 0600, removed => ( $removed_flag ? 1 : undef ), size => 65536, nattch => 2,
        cpid => 1201, lpid => 1301, uid => 1001, gid => $gid, cuid => 1001, cgid => $gid } ],
    "$name: segments" );
  is_deeply( $p->{sem}, [ { id => 65536, key => $key, mode => 0660, nsems => 3, uid => 0, gid => $gid, cuid => 0, cgid => $gid } ],
    "$name: semaphore sets" );
}

{
  my @texts = ( <<'EOT', <<'EOT', <<'EOT', <<'EOT', <<'EOT' );

------ Shared Memory Segments --------
key        shmid      owner      perms      bytes      nattch     status      
0x636f6d61 65536      root       660        4096       0                       
0x00000000 65537      1001       600        65536      2          dest         

EOT

------ Shared Memory Creator/Last-op PIDs --------
shmid      owner      cpid       lpid      
65536      root       1201       1202      
65537      1001       1201       1301      

EOT

------ Shared Memory Segment Creators/Owners --------
shmid      perms      cuid       cgid       uid        gid       
65536      660        root       root       root       root      
65537      600        1001       root       1001       root      

EOT

------ Semaphore Arrays --------
key        semid      owner      perms      nsems     
0x636f6d61 32768      root       660        3         

EOT

------ Semaphore Arrays Creators/Owners --------
semid      perms      cuid       cgid       uid        gid       
32768      660        root       root       root       root      

EOT
  my $p = parse_ipcs( @texts );
  is_deeply(
    $p->{shm},
    [ { id => 65536, key => 1668246881, mode => 0660, removed => 0, size => 4096, nattch => 0, cpid => 1201, lpid => 1202,
        uid => 0, gid => $root_gid, cuid => 0, cgid => $root_gid },
      { id => 65537, key => 0, mode => 0600, removed => 1, size => 65536, nattch => 2, cpid => 1201, lpid => 1301,
        uid => 1001, gid => $root_gid, cuid => 1001, cgid => $root_gid } ],
    'util-linux: segments merged from ipcs -m, -m -p, -m -c' );
  is_deeply( $p->{sem},
    [ { id => 32768, key => 1668246881, mode => 0660, nsems => 3, uid => 0, gid => $root_gid, cuid => 0, cgid => $root_gid } ],
    'util-linux: semaphore sets' );
  # A segment made between the runs of ipcs -m and ipcs -m -p (65538), one
  # removed between them (65536), and a semaphore set made after an empty
  # table: none of them is listed with fields missing.
  my $between = parse_ipcs(
    "------ Shared Memory Segments --------\nkey shmid owner perms bytes nattch status\n"
      . "0x636f6d61 65536 root 660 4096 0\n0x00000000 65537 1001 600 65536 2 dest\n",
    "------ Shared Memory Creator/Last-op PIDs --------\nshmid owner cpid lpid\n"
      . "65537 1001 1201 1301\n65538 1001 1401 1401\n",
    "------ Semaphore Arrays --------\nkey semid owner perms nsems\n",
    "------ Semaphore Arrays Creators/Owners --------\nsemid perms cuid cgid uid gid\n32769 600 root root root root\n",
  );
  is_deeply( [ map { $_->{id} } @{ $between->{shm} } ], [65537], 'util-linux: only segments every run listed' );
  is( $between->{shm}[0]{cpid}, 1201, '... with the fields of every run' );
  is_deeply( $between->{sem}, [], '... and no semaphore set an empty table left out' );
  is_deeply( parse_ipcs( "IPC status from <running system>\n" ), { shm => [], sem => [] }, 'nothing to list' );
  my $unknown = parse_ipcs( "T ID KEY MODE OWNER GROUP\nShared Memory:\nm 7 0x1 --rw-rw-rw- nosuchuser.x nosuchgrp.x\n" );
  ok( !defined $unknown->{shm}[0]{uid} && !defined $unknown->{shm}[0]{gid}, 'an unknown owner name: uid undef' );
}

done_testing();
