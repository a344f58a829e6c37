# Covers: the checks of IPC::ShareLite 0.17's own test suite, written afresh:
# creating a 100-byte share, version numbers, store/fetch of a short and of a
# multi-segment value (num_segments), a forked child and the parent each doing
# 1000 locked read-increment-write rounds (final value 2000, version 2004), and
# keys that are not 8-bit clean.

use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use POSIX ();
use IPC::ShareLite qw( :lock );

my $key = new_key();

my $share = IPC::ShareLite->new(
  -key     => $key,
  -create  => 'yes',
  -destroy => 'yes',
  -size    => 100,
);
ok( defined $share, 'share created' );
isa_ok( $share, 'IPC::ShareLite' );

is( $share->version, 1, 'a new share has version 1' );

ok( $share->store( 'maurice' ), 'store a short string' );
is( $share->version, 2, 'version 2 after one store' );
is( $share->fetch, 'maurice', 'fetch returns it' );

ok( $share->store( 'X' x 200 ), 'store 200 bytes' );
is( $share->version,      3,         'version 3' );
is( $share->num_segments, 3,         '200 bytes in 100-byte segments take 3 segments' );
is( $share->fetch,        'X' x 200, 'fetch returns the 200 bytes' );

ok( $share->store( 0 ), 'store 0' );
is( $share->version, 4,   'version 4' );
is( $share->fetch,   '0', 'fetch returns 0' );

# The increment race: a forked child and the parent each do 1000 rounds.
my $rounds = 1000;

sub increment {
  my $fail = 0;
  for ( 1 .. $rounds ) {
    my $l = $share->lock( LOCK_EX );
    unless ( $l ) { $fail++; next }
    my $val = $share->fetch;
    $share->store( $val + 1 ) or $fail++;
    $share->unlock or $fail++;
  }
  return $fail;
}

my $pid = fork;
die "fork: $!" unless defined $pid;
if ( !$pid ) {
  # The child must not remove the share when its copy of the object goes.
  $share->destroy( 0 );
  my $fail = eval { increment() };
  $fail = 99 unless defined $fail;
  undef $share;
  POSIX::_exit( $fail > 99 ? 99 : $fail );
}

my $fail = eval { increment() };
is( $@,    '', 'parent rounds did not die' );
is( $fail, 0,  'parent: every lock/store/unlock succeeded' );
is( wait_child( $pid ), 0, 'child: every lock/store/unlock succeeded' );

is( $share->fetch,   2 * $rounds, 'final value 2000' );
is( $share->version, 2004,        'final version 2004' );

# Keys must be 8-bit clean.
for my $bad ( "AAA\x{104}", "AAA\x{118}" ) {
  my $obj = eval {
    IPC::ShareLite->new( -key => $bad, -create => 'yes', -destroy => 'yes' );
  };
  ok( !defined $obj, sprintf( 'key "AAA\\x{%x}" is refused', ord substr $bad, 3 ) );
  like( $@, qr/not 8-bit clean/, '... with "not 8-bit clean"' );
}

undef $share;
ok( !defined semget( $key, 0, 0 ), 'destroy => yes removed the semaphore set' );
ok( !defined shmget( $key, 0, 0 ), 'destroy => yes removed the head segment' );

no_leaks_ok();
done_testing;
