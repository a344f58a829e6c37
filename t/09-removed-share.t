# Covers: a share removed behind an object's back (ipcrm, or systemd-logind's
# RemoveIPC, which removes a user's SysV objects when the user's last
# session ends): every later call fails with "Invalid argument" ($! EINVAL),
# as with 0.17; a call waiting for the lock when the share is removed fails
# with "Identifier removed" (EIDRM), as do calls after the object's own
# remove. The POD's ERRORS section explains both messages, what causes them
# (ipcrm, RemoveIPC) and what to do (RemoveIPC=no, a system user).
# SHARELITE_TEST_IMPL=orig runs the store, fetch and lock part against 0.17
# (in a private IPC namespace: unshare --ipc), which reports the same.

use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use Errno qw(EINVAL EIDRM);
use IPC::SysV qw(IPC_RMID);
use POSIX ();
use Time::HiRes qw(sleep);
use IPC::ShareLite qw( :lock );

watchdog( 60 );

my $ME   = quotemeta __FILE__;
my $OURS = impl_under_test() eq 'ours';

# Removed by ids, as ipcrm does (the ipcrm command where there is one).
{
  my $k = new_key( 1 );
  my $s = IPC::ShareLite->new( -key => $k, -create => 1, -destroy => 1, -size => 4096 ) or die "new: $!";
  $s->store( 'x' x 10000 );
  my @ids = chain_shmids( $k );
  my $sem = semget( $k, 0, 0 );
  my $ipcrm = grep { -x "$_/ipcrm" } split /:/, $ENV{PATH};
  if ( $ipcrm ) {
    system( 'ipcrm', ( map { ( '-m', $_ ) } @ids ), '-s', $sem ) == 0 or die "ipcrm: $?";
  }
  else {
    shmctl( $_, IPC_RMID, 0 ) for @ids;
    semctl( $sem, 0, IPC_RMID, 0 );
  }
  ok( !eval { $s->store( 'y' ); 1 }, 'store after ipcrm croaks' );
  like( $@, qr/^IPC::ShareLite store\(\) error: Invalid argument at $ME line/, '... Invalid argument' );
  is( $! + 0, EINVAL, '... $! is EINVAL' );
  ok( !eval { $s->fetch; 1 }, 'fetch croaks' );
  like( $@, qr/^IPC::ShareLite fetch\(\) error: Invalid argument at $ME line/, '... Invalid argument' );
  is( $s->lock( LOCK_SH ), undef, 'lock returns undef' );
  is( $! + 0, EINVAL, '... $! is EINVAL' );
  SKIP: {
    skip '0.17 counts segments without the lock, and has no remove', 4 unless $OURS;
    is( $s->num_segments, undef, 'num_segments returns undef' );
    is( $! + 0, EINVAL, '... $! is EINVAL' );
    ok( !eval { $s->remove; 1 }, 'remove croaks' );
    like( $@, qr/^IPC::ShareLite remove\(\) error: Invalid argument at $ME line/, '... Invalid argument' );
  }
  undef $s;
  ok( !defined( semget( $k, 0, 0 ) ) && !defined( shmget( $k, 0, 0 ) ), 'nothing is left at the key' );
}

unless ( $OURS ) { done_testing(); exit }

# Removed by another process while this one waits for the lock.
{
  my $k = new_key( 1 );
  my $s = IPC::ShareLite->new( -key => $k, -create => 1, -destroy => 0 ) or die "new: $!";
  pipe my $r, my $w or die "pipe: $!";
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    close $r;
    my $c = IPC::ShareLite->new( -key => $k ) or POSIX::_exit( 1 );
    $c->lock( LOCK_EX ) or POSIX::_exit( 2 );
    syswrite $w, "locked\n";
    sleep 0.5;
    $c->remove;
    POSIX::_exit( 0 );
  }
  close $w;
  my $line = <$r>;
  is( $line, "locked\n", 'another process holds the exclusive lock' );
  my $got = timed( 20, sub { $s->lock( LOCK_EX ) } );
  my $errno = $! + 0;
  is( $got, undef, 'a lock waiting while that process removes the share returns undef' );
  is( $errno, EIDRM, '... with $! EIDRM (Identifier removed)' );
  is( wait_child( $pid ), 0, 'the other process removed the share' );
  ok( !eval { $s->fetch; 1 }, 'a later fetch croaks' );
  like( $@, qr/^IPC::ShareLite fetch\(\) error: Invalid argument at /, '... Invalid argument' );
}

# This object's own remove: Identifier removed.
{
  my $s = IPC::ShareLite->new( -key => new_key( 1 ), -create => 1, -destroy => 1 ) or die "new: $!";
  $s->remove;
  ok( !eval { $s->fetch; 1 }, 'fetch after remove croaks' );
  like( $@, qr/^IPC::ShareLite fetch\(\) error: Identifier removed\b/, '... Identifier removed' );
}

# The POD explains both, their causes and what to do.
{
  open my $fh, '<', root_dir() . '/lib/IPC/ShareLite.pm' or die "ShareLite.pm: $!";
  my $pod = do { local $/; <$fh> };
  my ( $errors ) = $pod =~ /^=head1 ERRORS\n(.*?)^=head1 /ms;
  my ( $item ) = ( $errors // '' ) =~ /^(=item C<\.\.\. error: Identifier removed>, C<\.\.\. error: Invalid argument>\n.*?)^=item /ms;
  ok( $item, 'POD ERRORS: one item for "Identifier removed" and "Invalid argument"' );
  $item = '' unless defined $item;
  $item =~ s/\s+/ /g;
  like( $item, qr/C<Invalid argument> \(C<EINVAL>\) comes from calls made after another process removed it/,
    '... Invalid argument: after another process removed the share' );
  like( $item, qr/C<ipcrm>/, '... by ipcrm' );
  like( $item, qr/C<RemoveIPC=yes>.*last login session ends/, "... or by logind's RemoveIPC when the user's last session ends" );
  like( $item, qr/C<RemoveIPC=no> in F<\/etc\/systemd\/logind\.conf>/, '... what to do: RemoveIPC=no' );
  like( $item, qr/as a system user/, '... or a system user' );
  like( $item, qr/C<Identifier removed> \(C<EIDRM>\) comes from this object's own C<remove>/, '... Identifier removed: its own remove' );
}

no_leaks_ok();
done_testing();
