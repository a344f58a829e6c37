# Within a per-process limit of attached segments (macOS: kern.sysv.shmseg, 8
# by default; the BSDs: kern.ipc.shmseg), the module keeps working: it lets
# go of attachments when the system refuses one (EMFILE) and attaches again
# on use (rust-core/src/attachments.rs). Linux has no such limit, so a child
# runs with t/lib/attach-limit.c preloaded, which gives it one (8). In it:
#  - 20 shares open at once, each stored, fetched, stored again;
#  - perl's own shmread still works meanwhile (room is left for others);
#  - a 1 MB value in 64 KB segments (16 segments) stored, fetched through two
#    handles, shrunk to one segment and grown again.
# Skipped where the shim cannot be built or preloaded (no C compiler, no
# LD_PRELOAD).

use lib 't/lib';
use SLTest;
use strict;
use warnings;
use Test::More;
use Config;
use File::Temp qw(tempdir);

my $dir = tempdir( CLEANUP => 1 );
my $so  = "$dir/attach-limit.so";
my $cc  = $Config{cc} || 'cc';
system( "$cc -shared -fPIC -o '$so' '" . root_dir() . "/t/lib/attach-limit.c' -ldl >/dev/null 2>&1" ) == 0 && -f $so
  or plan skip_all => "cannot build the attach-limit shim with $cc (needs -shared and -ldl)";

local $ENV{LD_PRELOAD}   = $so;
local $ENV{ATTACH_LIMIT} = 8;

# Is the limit in effect? Nine private segments attached by perl: the ninth fails.
my ( $rc, $out ) = run_impl( 'ours', <<'EOC' );
require IPC::SharedMem;
my ( @segs, $failed );
eval {
  for ( 1 .. 9 ) {
    my $m = IPC::SharedMem->new( IPC_PRIVATE, 4096, 0600 | IPC_CREAT ) or die "shmget: $!";
    push @segs, $m;
    $m->attach or do { $failed = 0 + $!; last };
  }
};
for ( @segs ) { $_->detach; $_->remove }
print $failed // 'none';
EOC
plan skip_all => "the attach-limit shim is not in effect here (LD_PRELOAD: $out)"
  unless $rc == 0 && $out eq Errno::EMFILE();

plan tests => 6;

my @keys = map { new_key( 1 ) } 1 .. 20;
my $big  = new_key( 1 );

( $rc, $out ) = run_impl( 'ours', <<'EOC', $big, @keys );
alarm 60;
use Digest::MD5 qw(md5_hex);
my ( $big, @keys ) = @ARGV;
my @s = map { IPC::ShareLite->new( -key => $_, -create => 1, -destroy => 1 ) or die "open $_: $!" } @keys;
$s[$_]->store( "value $_" ) for 0 .. $#s;
my $bad = grep { $s[$_]->fetch ne "value $_" } 0 .. $#s;
$s[$_]->store( "again $_" x 100 ) for 0 .. $#s;
$bad += grep { $s[$_]->fetch ne "again $_" x 100 } 0 .. $#s;
print "twenty: ", ( $bad ? "$bad bad" : 'ok' ), "\n";
my $buf;
my $read = shmread( shmget( $keys[0], 0, 0 ), $buf, 0, 16 ) ? 'ok' : "failed: $!";
print "shmread: $read\n";
@s = ();

my $v = join '', map { chr( ( $_ * 7 ) % 256 ) } 1 .. 1_000_000;
my $a = IPC::ShareLite->new( -key => $big, -create => 1, -destroy => 1, -size => 65536 ) or die "big: $!";
my $b = IPC::ShareLite->new( -key => $big ) or die "big 2: $!";
$a->store( $v );
print "big: ", join( ' ', $a->num_segments, md5_hex( $b->fetch ) eq md5_hex( $v ) ? 'same' : 'differs',
  md5_hex( $a->fetch ) eq md5_hex( $v ) ? 'same' : 'differs' ), "\n";
$b->store( 'x' );
print "shrunk: ", $a->num_segments, ' ', $a->fetch, "\n";
$b->store( $v . $v );
print "grown: ", $a->num_segments, ' ', ( $a->fetch eq $v . $v ? 'same' : 'differs' ), "\n";
EOC
is( $rc, 0, 'the child under the limit ran to the end' ) or diag $out;
like( $out, qr/^twenty: ok$/m, '20 shares open at once, each stored and fetched twice' );
like( $out, qr/^shmread: ok$/m, "perl's own shmread still finds room meanwhile" );
like( $out, qr/^big: 16 same same$/m, 'a 1 MB value in 16 segments of 64 KB, fetched through two handles' );
like( $out, qr/^shrunk: 1 x$/m, 'shrunk to one segment' );
like( $out, qr/^grown: 31 same$/m, 'grown again to 31 segments' );

purge_key( $_ ) for $big, @keys;
