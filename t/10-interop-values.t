# Interop of stored values between our IPC::ShareLite and the original 0.17,
# both directions (ours creates/stores and 0.17 fetches, then the reverse):
# '', 1 byte, 200 KB and 1 MB values at the default segment size and at
# -size 4096 (md5, length and content checked by the reader), the version seen
# by the other side, a chain shrunk by one side seen short (fewer segments) by
# the other, which also keeps reading correctly when the chain grows again,
# the creator's segment size used by the other side's stores, and a share
# created by one side destroyed by the other (nothing left in ipcs).
#
# Only children touch the share (t/lib/SLInterop.pm agents); this process
# coordinates and inspects the listing of SysV objects and semaphores
# read-only. A scenario that needs more segments than the system allows
# (macOS: 32 in all) skips, naming the limit.
# SHARELITE_INTEROP_SELFTEST=1 runs 0.17 on both sides (checks the test itself).
# A 1 MB value at -size 4096 is stored only by ours: 0.17 would chain its
# 258 segments at keys K+1..K+257, beyond this file's block of 256 keys.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use SLTest qw(:DEFAULT no_room_for attach_limit);
use SLInterop;

need_ref();

my $DEF = 65536;

# One direction, one segment size: $W creates and stores, $R reads.
sub values_scenario {
  my ( $Wi, $Ri, $size ) = @_;
  my $S   = $size || $DEF;
  my $key = new_key( $size ? 64 : 32 );
  my $W   = agent( $Wi, "writer-$Wi" );
  my $R   = agent( $Ri, "reader-$Ri" );
  my $sz  = defined $size ? $size : 'undef';
  my $version = 1;

  is( $W->call( "\$S = open_share(key => $key, create => 1, size => $sz); \$S->version" ),
    1, "$Wi creates the share, version 1" );
  # ours as opener asks for the default size: it must attach the existing share anyway
  is( $R->call( "\$S = open_share(key => $key, size => $sz, ours_size => undef); \$S->version" ),
    1, "$Ri opens it, version 1" );
  my %sizes = shm_sizes();
  my @chain = chain_shmids( $key );
  is( $sizes{ $chain[0] }, $S, "head segment is $S bytes" );
  for my $A ( $W, $R ) {
    next if $A->real eq 'orig';    # 0.17's size() returns the requested size
    is( $A->call( '$S->size' ), $S, $A->name . ": size() is the creator's $S" );
  }
  is_deeply( [ $R->call( 'my $v = $S->fetch; (length $v, $S->num_segments)' ) ],
    [ 0, 1 ], "$Ri fetches '' from the new share, 1 segment" );

  # Store on $from, fetch on $to, check everything both see.
  my $xfer = sub {
    my ( $from, $to, $len, $seed, $what ) = @_;
    $version++;
    my ( $wlen, $wmd5, $wsegs, $wver ) = $from->call(
      "my \$v = mk($len, '$seed'); \$S->store(\$v); (length \$v, md5_hex(\$v), \$S->num_segments, \$S->version)"
    );
    my ( $rlen, $rmd5, $same, $rsegs, $rver ) = $to->call(
      "my \$v = \$S->fetch; (length \$v, md5_hex(\$v), (\$v eq mk($len, '$seed') ? 1 : 0), \$S->num_segments, \$S->version)"
    );
    my $t    = $from->impl . '->' . $to->impl . " $what ($len bytes, -size $S)";
    my $segs = nsegs( $len, $S );
    is( $wlen,  $len,  "$t: stored length" );
    is( $rlen,  $len,  "$t: fetched length" );
    is( $rmd5,  $wmd5, "$t: md5 equal" );
    is( $same,  1,     "$t: content equal" );
    is( $wsegs, $segs, "$t: writer's num_segments $segs" );
    is( $rsegs, $segs, "$t: reader's num_segments $segs" );
    is( $wver,  $version, "$t: writer's version $version" );
    is( $rver,  $version, "$t: reader's version $version" );
    my @ids = chain_shmids( $key );
    my %sz  = shm_sizes();
    is( scalar @ids, $segs, "$t: chain in the kernel has $segs segments" );
    is( scalar( grep { ( $sz{$_} || 0 ) != $S } @ids ), 0, "$t: every segment is $S bytes" );
  };

  my @lens = ( 0, 1, 200 * 1024 );
  push @lens, 1024 * 1024 if !$size || $W->real ne 'orig';
  $xfer->( $W, $R, $_, "w$_", 'value' ) for @lens;

  # shrink: R is attached to the whole chain; it must see the short value
  $xfer->( $W, $R, 10, 'short', 'shrunk value' );
  # grow again: new segments (other shmids); R must not read stale attachments
  $xfer->( $W, $R, $size ? 20000 : 200 * 1024, 'regrow', 'regrown value' );

  # the other side stores with the creator's segment size, and shrinks the chain
  $xfer->( $R, $W, 20000,      'r1', 'value stored by the opener' );
  $xfer->( $R, $W, 200 * 1024, 'r2', 'value stored by the opener' );
  $xfer->( $W, $R, 0,          'e',  'empty value (cuts the opener\'s segments)' );

  my @ids = chain_shmids( $key );
  $R->call( 'undef $S; 1' );
  $W->call( '$S->destroy(1); undef $S; 1' );
  is( $R->finish, 0, "$Ri child exits cleanly" );
  is( $W->finish, 0, "$Wi child exits cleanly" );
  ok( share_gone( $key, @ids ), "share removed by its creator ($Wi)" );
}

# $C creates and stores; $D (the other side) destroys it.
sub destroy_scenario {
  my ( $Ci, $Di ) = @_;
  my $key = new_key( 8 );
  my $C   = agent( $Ci, "creator-$Ci" );
  my $D   = agent( $Di, "destroyer-$Di" );
  my $len = 200 * 1024;
  my $md5 = $C->call( "\$S = open_share(key => $key, create => 1); my \$v = mk($len, 'd'); \$S->store(\$v); md5_hex(\$v)" );
  is( $D->call( "\$S = open_share(key => $key, destroy => 1); md5_hex(\$S->fetch)" ),
    $md5, "$Di fetches what $Ci stored" );
  my @ids = chain_shmids( $key );
  is( scalar @ids, nsegs( $len, $DEF ), 'chain of ' . scalar( @ids ) . ' segments before destroy' );
  is( scalar( () = sem_values( $key ) ), 3, 'semaphore set exists' );
  $D->call( 'undef $S; 1' );    # DESTROY with destroy on, while $C is still attached
  ok( !defined shmget( $key, 0, 0 ), "$Di removed the head (key no longer found)" );
  ok( !defined semget( $key, 0, 0 ), "$Di removed the semaphore set" );
  is( $C->call( 'undef $S; 1' ), 1, "$Ci detaches" );
  is( $C->finish, 0, "$Ci child exits cleanly" );
  is( $D->finish, 0, "$Di child exits cleanly" );
  ok( share_gone( $key, @ids ), "nothing left of the share created by $Ci (ipcs clean)" );
}

for my $d ( directions() ) {
  my ( $A, $B ) = @$d;
  for my $size ( undef, 4096 ) {
    my $t = "$A creates and stores, $B fetches, -size " . ( $size || 'default' );
    # The longest value (1 MB; 200 KB from 0.17 at -size 4096) and two more.
    my $max = !$size || real_impl( $A ) ne 'orig' ? 1024 * 1024 : 200 * 1024;
    my $no_room = no_room_for( nsegs( $max, $size || $DEF ) + 2, $size || $DEF );
    # 0.17 keeps every segment of a value attached at once (ours lets go of
    # them where the system limits attachments).
    my $attach = attach_limit( nsegs( $max, $size || $DEF ) );
    $no_room ||= sprintf( "0.17 keeps all %d segments of the value attached; a process here may attach only %d"
        . " (EMFILE: the system's limit, kern.sysv.shmseg on macOS)", nsegs( $max, $size || $DEF ), $attach )
      if defined $attach;
    subtest $t => sub {
      plan skip_all => $no_room if $no_room;
      eval { values_scenario( $A, $B, $size ); 1 } or fail( "scenario died: $@" );
    };
    reap_agents();
  }
  subtest "$A creates, $B destroys" => sub {
    eval { destroy_scenario( $A, $B ); 1 } or fail( "scenario died: $@" );
  };
  reap_agents();
}

no_leaks_ok();
done_testing;
