# Every segment of a share carries the share's permission bits, whoever grows
# the chain (doc/FORMAT.md, 6 "Chained segments are private"):
#  - a -mode => 0600 share grown by a handle that gave no -mode (default
#    0666), or by -flags with other bits, gets 0600 chained segments;
#  - a 0666 share grown by a -mode => 0600 handle gets 0666 ones;
#  - a 0640 share grown after the chain shrank keeps 0640;
#  - as root, a child of another uid (65534) cannot attach and read a chained
#    segment of a 0600 share by its id, and can fetch the whole value of a
#    0666 share that a 0600 handle grew.
# Modes are read with IPC_STAT (segment_stat), the portable way.

use lib 't/lib';
use SLTest;
use strict;
use warnings;
use Test::More;
use IPC::ShareLite qw(:all);
use IPC::ShareLite::Inspect qw(segment_stat);

sub modes_of_chain {
  my $key = shift;
  my ( $head, @rest ) = chain_shmids( $key );
  my $st = segment_stat( $head );
  return ( $st ? $st->{mode} & 0777 : undef, map { my $s = segment_stat( $_ ); $s ? $s->{mode} & 0777 : undef } @rest );
}

sub check_chain {
  my ( $key, $want, $name ) = @_;
  my ( $head, @rest ) = modes_of_chain( $key );
  ok( @rest >= 3, "$name: the chain grew (" . scalar( @rest ) . " chained segments)" );
  is( sprintf( '%o', $head // 0 ), sprintf( '%o', $want ), "$name: head mode" );
  my @bad = grep { ( $_ // -1 ) != $want } @rest;
  ok( !@bad, "$name: every chained segment is " . sprintf( '%04o', $want ) )
    or diag( 'modes: ' . join ' ', map { defined $_ ? sprintf( '%04o', $_ ) : 'gone' } @rest );
}

my $value = join '', map { chr( $_ % 251 ) } 1 .. 20_000;    # 5 segments of 4096 bytes

# ---- a 0600 share grown by handles that ask for other modes ----------------
my $K1 = new_key( 4 );
{
  my $owner = IPC::ShareLite->new( -key => $K1, -create => 1, -mode => 0600, -size => 4096, -destroy => 0 );
  ok( $owner, 'a 0600 share' );
  my $other = IPC::ShareLite->new( -key => $K1, -create => 1 );    # default mode 0666
  $other->store( $value );
  check_chain( $K1, 0600, '0600 share grown by a handle with the default mode' );
  $other->store( 'x' );
  my $flags = IPC::ShareLite->new( -key => $K1, -flags => IPC_CREAT | 0644 );
  $flags->store( $value . $value );
  check_chain( $K1, 0600, '0600 share grown by a handle with -flags 0644' );
  is( $owner->fetch, $value . $value, 'the owner reads the value' );
}

# ---- a 0666 share grown by a 0600 handle -----------------------------------
my $K2 = new_key( 4 );
{
  my $owner = IPC::ShareLite->new( -key => $K2, -create => 1, -size => 4096, -destroy => 0 );
  my $private = IPC::ShareLite->new( -key => $K2, -create => 1, -mode => 0600 );
  $private->store( $value );
  check_chain( $K2, 0666, '0666 share grown by a -mode 0600 handle' );
}

# ---- shrink, then grow again through another mode --------------------------
my $K3 = new_key( 4 );
{
  my $owner = IPC::ShareLite->new( -key => $K3, -create => 1, -mode => 0640, -size => 4096, -destroy => 1 );
  my $other = IPC::ShareLite->new( -key => $K3, -mode => 0666 );
  $other->store( $value );
  $owner->store( '' );
  is( $owner->num_segments, 1, 'shrunk to the head' );
  $other->store( $value );
  check_chain( $K3, 0640, '0640 share shrunk and grown again by a 0666 handle' );
}

# ---- another uid: no reading a 0600 share's chained segment ----------------
SKIP: {
  skip 'needs root (to run a child as uid 65534)', 4 unless can_switch_to_nobody();
  my ( undef, @rest ) = chain_shmids( $K1 );
  my $probe = <<'EOC';
alarm 20;
$) = "65534 65534"; $> = 65534; die "still root\n" if $> == 0 || $) =~ /^0\b/;
my $buf;
my $ok = shmread( shift, $buf, 0, 16 );
print $ok ? 'read' : 0 + $!;
EOC
  my ( $rc, $out ) = run_impl( 'ours', $probe, $rest[0] );
  is( $rc, 0, 'the uid 65534 child ran' );
  is( $out, Errno::EACCES(), "uid 65534 cannot read a chained segment of the 0600 share (shmid $rest[0])" );

  my $fetch = <<'EOC';
alarm 20;
my $key = shift;
$) = "65534 65534"; $> = 65534; die "still root\n" if $> == 0 || $) =~ /^0\b/;
my $s = IPC::ShareLite->new( -key => $key );
print length $s->fetch;
EOC
  ( $rc, $out ) = run_impl( 'ours', $fetch, $K2 );
  is( $rc, 0, 'the uid 65534 child fetched the 0666 share' );
  is( $out, length $value, 'and got the whole value a 0600 handle stored' );
}

purge_key( $_ ) for $K1, $K2, $K3;
no_leaks_ok();
done_testing;
