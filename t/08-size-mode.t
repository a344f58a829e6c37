# Covers: -size with a unit (k, M, G: powers of 1024, either case) and -mode as
# permissions in the style of ls ('rw-r-----') or as an octal string ('0640'),
# on real shares: the segments and the semaphore set get what was asked, the
# accessors say so, values spread over segments of that size; plain numbers
# keep working as before; malformed values croak "Failed to create share:
# Invalid argument (...)" with $! == EINVAL, at the caller, before anything is
# created. New in 0.18, so this file does not run against 0.17.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT shm_row sem_row_by_key perms_of_shm perms_of_sem real_size exists_share new_bounded);
use Test::More;
use Errno qw( EINVAL );
use IPC::ShareLite qw( :all );

plan skip_all => '-size units and -mode strings are new in 0.18' if impl_under_test() eq 'orig';
watchdog( 120 );

my $ME = quotemeta __FILE__;

# --- -size with units --------------------------------------------------------------
{
  my @cases = (
    [ '1k',   1024 ],
    [ '100k', 102_400 ],
    [ '100K', 102_400 ],
    [ '4M',   4 * 1024 * 1024 ],
    [ '4m',   4 * 1024 * 1024 ],
    [ '3000', 3000 ],
    [ 3000,   3000 ],
    [ 4096 * 3, 12_288 ],
  );
  for my $c ( @cases ) {
    my ( $arg, $bytes ) = @$c;
    my $k = new_key( 2 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => $arg );
    ok( $s, "-size '$arg'" ) or diag $@;
    is( $s && $s->size,   $bytes, "-size '$arg': size accessor is $bytes" );
    is( real_size( $k ),  $bytes, "-size '$arg': the segment has $bytes bytes" );
  }

  # One gibibyte, when the system allows a segment that large (the memory is
  # not touched beyond the first page): found by trying, the limit named
  # (EINVAL: larger than shmmax; ENOSPC, ENOMEM: beyond shmall or memory).
  SKIP: {
    my $k = new_key( 2 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => '1G' );
    if ( !$s && $@ =~ /(No space left on device|Cannot allocate memory|Invalid argument)/ ) {
      my $limit = $1 eq 'Invalid argument' ? 'the size of one segment (shmmax)' : 'the total size of segments (shmall) or memory';
      skip "the system refuses a 1 GiB segment ($1: its limit on $limit)", 2;
    }
    is( $s && $s->size,  1024**3, "-size '1G': size accessor" );
    is( real_size( $k ), 1024**3, "-size '1G': the segment has 2**30 bytes" );
  }

  # Values spread over segments of the size asked for: 1 KiB segments carry
  # 1008 bytes each after their 16-byte header.
  my $k = new_key( 8 );
  my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => '1k' );
  my $value = join '', map { chr( $_ % 251 ) } 1 .. 5000;
  ok( $s && $s->store( $value ), "store 5000 bytes in a '1k' share" );
  is( $s && $s->num_segments, 5, '... in 5 segments' );
  is( scalar( () = chain_shmids( $k ) ), 5, '... 5 segments in the chain' );
  is_deeply( [ map { my $r = shm_row( $_ ); $r && $r->{size} } chain_shmids( $k ) ], [ (1024) x 5 ],
    '... every one of 1024 bytes' );
  ok( $s && $s->fetch eq $value, '... and fetched back whole' );

  # A second opener with a unit of its own still gets the share's real size.
  my $t = new_bounded( -key => $k, -size => '4M' );
  is( $t && $t->size, 1024, "opening it with -size '4M' gives the real 1024" );
  ok( $t && $t->fetch eq $value, '... and the same value' );
}

# --- malformed -size ---------------------------------------------------------------
for my $bad ( '1.5M', '10KB', '10 k', ' 10k', 'k', '-1', '-1k', '4T', '1e3k', 'abc', '0x100', 1.5, -4096 ) {
  my $k = new_key( 2 );
  ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => $bad ), "-size '$bad' croaks" );
  my ( $err, $errno ) = ( $@, $! + 0 );
  like( $err, qr/^Failed to create share: Invalid argument \(-size must be a whole number of bytes, optionally followed by k, M or G: not '\Q$bad\E'\) at $ME line \d+/,
    "... saying what -size must be, at the caller" );
  is( $errno, EINVAL, '... $! is EINVAL' );
  ok( !exists_share( $k ), '... before creating anything' );
}
{
  my $k = new_key( 2 );
  ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -size => '99999999999G' ), "-size '99999999999G' croaks" );
  like( $@, qr/^Failed to create share: Invalid argument \(-size 99999999999G is larger than any segment\) at $ME line \d+/,
    '... larger than any segment' );
  ok( !exists_share( $k ), '... before creating anything' );
}

# --- -mode as a string -------------------------------------------------------------
{
  my @cases = (
    [ 'rw-r-----', 0640 ],
    [ 'rw-------', 0600 ],
    [ 'rwxrwxrwx', 0777 ],
    [ 'rw-rw-r--', 0664 ],
    [ '0640',      0640 ],
    [ '0600',      0600 ],
    [ '00644',     0644 ],
    [ 0600,        0600 ],    # a number, as in 0.17
    [ '',          0666 ],    # the default
    [ 0,           0666 ],    # 0 means the default, as in 0.17
  );
  for my $c ( @cases ) {
    my ( $arg, $bits ) = @$c;
    my $k = new_key( 4 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => $arg, -size => 100 );
    my $show = sprintf '%04o', $bits;
    ok( $s, "-mode '$arg'" ) or diag $@;
    is( $s && $s->mode,  $bits,             "-mode '$arg': mode accessor is $show" );
    is( $s && $s->flags, $bits | IPC_CREAT, "-mode '$arg': flags accessor" );
    is( perms_of_sem( $k ), $bits, "-mode '$arg': the semaphore set has $show" );
    $s && $s->store( 'x' x 250 );    # three segments of 100 bytes
    my @ids = chain_shmids( $k );
    is( scalar @ids, 3, "-mode '$arg': a value in 3 segments" );
    is_deeply( [ map { perms_of_shm( $_ ) } @ids ], [ ($bits) x 3 ], "-mode '$arg': every segment has $show" );
  }

  # Read-only for everyone, its creator included: only a privileged creator
  # can still attach it for writing (as with 0.17). Anyone else gets the
  # error, and nothing is left behind.
  {
    my $k = new_key( 2 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => 'r--r--r--' );
    if ( $> == 0 ) {
      ok( $s, "-mode 'r--r--r--' as root" ) or diag $@;
      is( $s && $s->mode, 0444, '... mode accessor is 0444' );
      is( perms_of_sem( $k ), 0444, '... the semaphore set has 0444' );
    }
    else {
      ok( !$s, "-mode 'r--r--r--' croaks for a creator that is not root" );
      like( $@, qr/^Failed to create share: Permission denied at $ME line \d+/, '... Permission denied, at the caller' );
      ok( !exists_share( $k ), '... and leaves nothing at the key' );
    }
  }

  # No permission at all: only a privileged creator can still use the share.
  SKIP: {
    skip 'mode 0 is usable by root only', 3 unless $> == 0;
    my $k = new_key( 2 );
    my $s = new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => '---------' );
    ok( $s, "-mode '---------'" ) or diag $@;
    is( $s && $s->mode,    0, '... mode accessor is 0' );
    is( perms_of_sem( $k ), 0, '... the semaphore set has mode 0' );
  }

  # -flags wins over -mode, whatever -mode holds (as documented).
  my $k = new_key( 2 );
  my $s = new_bounded( -key => $k, -flags => IPC_CREAT | 0600, -destroy => 'yes', -mode => 'rwxrwxrwx' );
  ok( $s, '-flags with a -mode string' ) or diag $@;
  is( $s && $s->mode, undef, '... mode accessor is undef' );
  is( perms_of_sem( $k ), 0600, '... the mode comes from -flags' );
}

# --- malformed -mode ---------------------------------------------------------------
for my $bad ( 'rw-r--r', 'rw-r--r--x', 'rwxrwxrwz', 'wr-------', 'RW-R-----', 'u=rw', '0689', '0o640', '0x1b6', 'abc', -1, 1.5 ) {
  my $k = new_key( 2 );
  ok( !new_bounded( -key => $k, -create => 'yes', -destroy => 'yes', -mode => $bad ), "-mode '$bad' croaks" );
  my ( $err, $errno ) = ( $@, $! + 0 );
  like( $err, qr/^Failed to create share: Invalid argument \(-mode must be a number, an octal string such as '0640' or permissions such as 'rw-r-----': not '\Q$bad\E'\) at $ME line \d+/,
    "... saying what -mode must be, at the caller" );
  is( $errno, EINVAL, '... $! is EINVAL' );
  ok( !exists_share( $k ), '... before creating anything' );
}

no_leaks_ok();
done_testing;
