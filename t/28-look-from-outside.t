# What the Rust core sees of a share from outside, without opening it
# (doc/FORMAT.md, section 8; IPC::ShareLite::_look, _orphan, _remove_orphan,
# which sharelite list, stat and gc use): on a share made by hand from real
# segments, the chain's state and where it breaks (ok, cycle, a link to a
# removed segment, an invalid id, a segment of another size, a short chain,
# a negative length), nothing and not-a-share; and which segments are
# orphans a look over the whole host may remove: real ones made by children
# that exited, next to segments that must never be taken for one (linked,
# untagged, attached, made by a live process, keyed, another tag). Every
# object is created here, known by its id, and removed at the end.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SLTest;
use Errno ();
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_EXCL IPC_RMID);
use POSIX ();
use IPC::ShareLite;
use IPC::ShareLite::Inspect qw(segment_stat);

my $TAG = 0x534c4348;    # 'SLCH': a chained segment of ours (doc/FORMAT.md, 6)

# A segment of this file's own (SLTest removes what it owns at the end).
sub segment {
  my ( $key, $size ) = @_;
  return own_shm( shmget( $key, $size, IPC_CREAT | IPC_EXCL | 0600 ) // die "shmget: $!" );
}

sub header {
  my ( $id, @h ) = @_;
  shmwrite( $id, pack( 'l l L L', @h ), 0, 16 ) or die "shmwrite $id: $!";
}

sub gone_id {
  my $id = segment( IPC_PRIVATE, 4096 );
  shmctl( $id, IPC_RMID, 0 ) or die;
  return $id;
}

sub look { IPC::ShareLite::_look( shift ) }

# ------------------------------------------------------------ what a key holds

my $K = new_key( 1 );
is_deeply( look( $K ), { found => 'nothing' }, 'a free key: nothing' );
my $H = segment( $K, 4096 );
my $l = look( $K );
is( $l->{found}, 'not-a-share', 'a lone segment: not a share' );
is( $l->{why_not}, 'no semaphore set of 3, a shared memory segment', '... saying why' );
my $S = own_sem( semget( $K, 3, IPC_CREAT | IPC_EXCL | 0600 ) // die "semget: $!" );
semctl( $S, 0, IPC::SysV::SETVAL(), 1 ) or die "semctl: $!";

# ------------------------------------------------------------ chains

my ( $C1, $C2 ) = map { segment( IPC_PRIVATE, 4096 ) } 1, 2;
header( $H, $C1, 5000, 1, 7 );
header( $C1, $C2, 0, $TAG, $H );
header( $C2, -1, 0, $TAG, $H );
{
  $l = look( $K );
  is_deeply( [ @$l{qw(found key shmid semid segment_size mode uid)} ], [ 'share', $K, $H, $S, 4096, 0600, $< ],
    'a share: its objects' );
  is_deeply( [ @$l{qw(next_shmid length shm_state version initialised readers writers)} ], [ $C1, 5000, 1, 7, 1, 0, 0 ],
    '... its header and semaphores' );
  is_deeply( [ $l->{shmids}, $l->{chain}, $l->{problem} ], [ [ $H, $C1, $C2 ], 'ok', undef ], '... its chain: ok' );

  header( $C2, $H, 0, $TAG, $H );
  $l = look( $K );
  is_deeply( [ @$l{qw(shmids chain)} ], [ [ $H, $C1, $C2 ], 'cycle' ], 'a cycle: each segment once' );
  like( $l->{problem}, qr/segment $C2 links back to segment $H/, '... and where' );

  my $gone = gone_id();
  header( $C2, $gone, 0, $TAG, $H );
  $l = look( $K );
  is_deeply( [ @$l{qw(shmids chain)} ], [ [ $H, $C1, $C2 ], 'broken' ], 'a link to a removed segment: broken' );
  like( $l->{problem}, qr/segment $C2 links to segment $gone/, '... and where' );

  header( $C2, -7, 0, $TAG, $H );
  $l = look( $K );
  is( $l->{chain}, 'broken', 'an invalid id: broken' );
  like( $l->{problem}, qr/invalid next_shmid -7/, '... says so' );

  my $F = segment( IPC_PRIVATE, 8192 );
  header( $F, -1, 0, $TAG, $H );
  header( $C2, $F, 0, $TAG, $H );
  $l = look( $K );
  is_deeply( [ @$l{qw(shmids chain)} ], [ [ $H, $C1, $C2 ], 'foreign' ], 'a segment of another size: foreign' );
  like( $l->{problem}, qr/segment $F is 8192 bytes, not 4096/, '... says which' );
  header( $C2, -1, 0, $TAG, $H );

  header( $H, $C1, 20000, 1, 7 );
  $l = look( $K );
  is( $l->{chain}, 'short', 'a length past the chain: short' );
  like( $l->{problem}, qr/length 20000 needs more than 3 segments/, '... says so' );
  header( $H, $C1, -3, 1, 7 );
  is( look( $K )->{chain}, 'bad-length', 'a negative length: bad-length' );
  header( $H, $C1, 5000, 1, 7 );
  is( look( $K )->{chain}, 'ok', 'mended: ok' );
  my $nattch = SLTest::settled( sub { [ map { segment_stat( $_ )->{nattch} } $H, $C1, $C2 ] }, sub { !grep { $_ } @{ $_[0] } } );
  is_deeply( $nattch, [ 0, 0, 0 ], 'looking leaves nothing attached' );
}

# ------------------------------------------------------------ orphans

# A segment made by a child that then exits: its creator is dead.
sub child_segment {
  my ( $key, $size, @h ) = @_;
  pipe( my $r, my $w ) or die "pipe: $!";
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    close $r;
    my $id = shmget( $key, $size, IPC_CREAT | IPC_EXCL | 0600 );
    shmwrite( $id, pack( 'l l L L', @h ), 0, 16 ) if defined $id && @h;
    print {$w} defined $id ? $id : -1;
    close $w;
    POSIX::_exit( 0 );
  }
  close $w;
  my $id = <$r>;
  waitpid( $pid, 0 );
  die "child could not create a segment" unless defined $id && $id >= 0;
  own_shm( $id );
  return ( $id, $pid );
}

sub orphan { IPC::ShareLite::_orphan( shift ) }

{
  my $gone = gone_id();
  my ( $o1, $pid1 ) = child_segment( IPC_PRIVATE, 4096, -1, 0, $TAG, $gone );    # head gone
  my ( $o2, $pid2 ) = child_segment( IPC_PRIVATE, 4096, -1, 0, $TAG, $H );        # head lives, no link
  my ( $o3 ) = child_segment( IPC_PRIVATE, 4096, -1, 0, $TAG, $H );               # linked from the chain
  header( $C2, $o3, 0, $TAG, $H );
  my ( $o4 ) = child_segment( IPC_PRIVATE, 4096 );                                 # untagged (all zero)
  my ( $o5 ) = child_segment( IPC_PRIVATE, 4096, -1, 0, $TAG, $gone );            # attached here
  my $addr = IPC::SysV::shmat( $o5, undef, 0 );
  ok( defined $addr, 'attached one of them' );
  my $o6 = segment( IPC_PRIVATE, 4096 );                                           # creator alive (us)
  header( $o6, -1, 0, $TAG, $gone );
  my ( $o7 ) = child_segment( new_key( 1 ), 4096, -1, 0, $TAG, $gone );             # not private
  my ( $o8 ) = child_segment( IPC_PRIVATE, 4096, -1, 0, $TAG + 1, $gone );        # another tag

  my @mine = ( $o1, $o2, $o3, $o4, $o5, $o6, $o7, $o8, $H, $C1, $C2 );
  my @found = grep { defined } map { orphan( $_ ) } @mine;
  is_deeply( [ sort { $a->{shmid} <=> $b->{shmid} } @found ],
    [ sort { $a->{shmid} <=> $b->{shmid} }
      { shmid => $o1, head => $gone, size => 4096, mode => 0600, uid => $<, cpid => $pid1, reason => 'head gone' },
      { shmid => $o2, head => $H, size => 4096, mode => 0600, uid => $<, cpid => $pid2,
        reason => 'not in the chain of its head' } ],
    'orphans: the one whose head is gone and the one its head does not link; nothing else of ours' );

  ok( !IPC::ShareLite::_remove_orphan( $o3, $H, $pid2 ), 'the core refuses to remove a linked segment' );
  like( IPC::ShareLite::_last_error(), qr/no longer an orphan/, '... and says why' );
  ok( !IPC::ShareLite::_remove_orphan( $o6, $gone, $$ ), 'the core refuses one whose creator lives' );
  ok( defined segment_stat( $o3 ) && defined segment_stat( $o6 ), 'both still there' );
  ok( !IPC::ShareLite::_remove_orphan( $o1, $gone, $pid1 + 1 ), 'the core refuses one made by another process' );
  ok( IPC::ShareLite::_remove_orphan( $o1, $gone, $pid1 ), 'the core removes a real orphan' )
    or diag IPC::ShareLite::_last_error();
  ok( !defined segment_stat( $o1 ), '... it is gone' );
  ok( !IPC::ShareLite::_remove_orphan( $o1, $gone, $pid1 ), 'a second removal fails' );
  like( IPC::ShareLite::_last_error(), qr/segment $o1/, '... naming the segment' );
  IPC::SysV::shmdt( $addr );
  ok( orphan( $o5 ), 'detached, it is an orphan too' );
  ok( defined segment_stat( $_ ), "segment $_ untouched" ) for $o2, $o3, $o4, $o5, $o6, $o7, $o8, $H, $C1, $C2;
}

done_testing();
