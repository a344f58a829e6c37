# Covers: every state a writer killed while chaining a segment can leave is
# reclaimed when the share is removed, and nothing else is. In a private IPC
# namespace (SLPrivateIPC), a share's remove() must sweep private segments of
# its size and mode, attached nowhere, made by a process that is gone, whose
# header is one init_chained can leave: all zero (killed before the first
# write), naming the head without the tag, tagged with the head (linked or not). It must
# leave alone: the same states made by a live process, another mode, another
# size, a tag without the head, segments naming another head, and a segment
# with data in its header.

use strict;
use warnings;
use lib 't/lib';
use SLPrivateIPC;
use SLTest;
use Test::More;
use IPC::SysV qw( IPC_PRIVATE IPC_CREAT IPC_RMID IPC_STAT );
use IPC::ShareLite;

my $TAG  = 0x534c4348;
my $SIZE = 4096;
my $MODE = 0600;

sub make_seg {
  my ( $size, $mode, $header ) = @_;
  my $id = shmget( IPC_PRIVATE, $size, $mode | IPC_CREAT ) // die "shmget: $!";
  shmwrite( $id, pack( 'l l L L', @$header ), 0, 16 ) or die "shmwrite: $!" if $header;
  return $id;
}

sub exists_seg {
  my $buf;
  return defined shmctl( $_[0], IPC_STAT, $buf );
}

# A fresh namespace hands out shmid 0 first: keep it from the head, so that
# a header naming the head differs from one still all zero.
my $first = make_seg( 64, 0600, undef );
my $s = IPC::ShareLite->new( -key => 4242, -create => 1, -size => $SIZE, -mode => $MODE ) or die "new: $!";
$s->store( 'x' x 10000 );
my $head = shmget( 4242, 0, 0 ) // die "head: $!";

# Made by a child that then exits: their creator is gone.
my %dead = (
  'all zero'                => [ $SIZE, $MODE, undef ],
  'head, no tag'            => [ $SIZE, $MODE, [ 0, 0, 0, $head ] ],
  'tag, no head'            => [ $SIZE, $MODE, [ 0, 0, $TAG, 0 ] ],
  'another head, no tag'    => [ $SIZE, $MODE, [ 0, 0, 0, $head + 1 ] ],
  'tagged with the head'    => [ $SIZE, $MODE, [ 0, 0, $TAG, $head ] ],
  'tagged, end of chain'    => [ $SIZE, $MODE, [ -1, 0, $TAG, $head ] ],
  'zero, another mode'      => [ $SIZE, 0644, undef ],
  'zero, another size'      => [ 2 * $SIZE, $MODE, undef ],
  'tagged, another head'    => [ $SIZE, $MODE, [ -1, 0, $TAG, $head + 1 ] ],
  'next written, no tag'    => [ $SIZE, $MODE, [ -1, 0, 0, 0 ] ],
  'data in the header'      => [ $SIZE, $MODE, [ 5, 7, 9, 11 ] ],
);
my @names = sort keys %dead;
pipe my $r, my $w or die $!;
my $pid = fork // die $!;
if ( !$pid ) {
  close $r;
  print {$w} join( ' ', map { make_seg( @{ $dead{$_} } ) } @names ), "\n";
  close $w;
  POSIX::_exit( 0 );
}
close $w;
chomp( my $ids = <$r> );
waitpid $pid, 0;
my %id;
@id{@names} = split ' ', $ids;

# The same reclaimable states, made by this (live) process.
my %live = (
  'all zero, creator alive'     => make_seg( $SIZE, $MODE, undef ),
  'head, no tag, creator alive' => make_seg( $SIZE, $MODE, [ 0, 0, 0, $head ] ),
);

my %swept = map { $_ => 1 } 'all zero', 'head, no tag', 'tagged with the head', 'tagged, end of chain';
ok( $s->remove, 'the share is removed' );
for my $name ( @names ) {
  if ( $swept{$name} ) {
    ok( !exists_seg( $id{$name} ), "swept: $name" );
  } else {
    ok( exists_seg( $id{$name} ), "left alone: $name" );
  }
}
ok( exists_seg( $live{$_} ), "left alone: $_" ) for sort keys %live;
shmctl( $_, IPC_RMID, 0 ) for grep { exists_seg( $_ ) } values %id, values %live, $first;
is_deeply( SLPrivateIPC::objects(), { shm => [], sem => [] }, 'nothing is left' );

done_testing();
