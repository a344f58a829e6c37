# Opening a share whose head is already initialised does not wait behind
# another process's exclusive lock (nothing is read before a lock is taken),
# and the opened handle then waits for the lock only when it reads or writes.
use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use IPC::ShareLite qw( :lock );
use Time::HiRes qw( time );

plan skip_all => 'checks our module (0.17 waits here)' if impl_under_test() ne 'ours';

my $key   = new_key();
my $share = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 1 );
$share->store( 'before' );
ok( $share->lock( LOCK_EX ), 'parent holds LOCK_EX' );

my ( $rc, $out ) = run_impl( 'ours', <<'PERL', $key );
use Time::HiRes qw( time );
alarm 10;    # an open that waits for the lock fails the test, not hangs it
my $key = shift;
my $t0 = time;
my $s = IPC::ShareLite->new( -key => $key, -create => 1 );
printf "opened %.3f\n", time - $t0;
print 'nb ', $s->lock( LOCK_SH | LOCK_NB ), "\n";
print 'timed ', $s->lock( LOCK_SH, 0.2 ), "\n";
PERL
is( $rc, 0, 'child ran' );
my ( $opened ) = $out =~ /^opened ([\d.]+)$/m;
ok( defined $opened && $opened < 1, 'the child opened the share while the lock was held' ) or diag $out;
like( $out, qr/^nb 0$/m,    'its non-blocking shared lock would block' );
like( $out, qr/^timed 0$/m, 'its timed shared lock gave up' );

$share->unlock;
my ( $rc2, $out2 ) = run_impl( 'ours', 'my $s = IPC::ShareLite->new( -key => shift ); print $s->fetch', $key );
is( $out2, 'before', 'after the unlock the value reads as stored' );

undef $share;
no_leaks_ok();
done_testing;
