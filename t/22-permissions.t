# Permissions (root only: a child switches to uid/gid 65534):
#  - a 0600 share, created by ours or by 0.17, opened by uid 65534 with ours
#    (with and without -create) fails "Failed to create share: Permission
#    denied" with $! == EACCES; a 0666 share opens fine as uid 65534 (control);
#  - -mode => 0640 (and -flags => IPC_CREAT|0640) gives perms 640 on the head,
#    on every chained segment (chain_shmids, the mode in the listing of
#    segments: /proc/sysvipc/shm or ipcs) also after the chain shrinks and
#    grows again, and on the semaphore set (the listing of semaphore sets).

use lib 't/lib';
use SLTest;
use strict;
use warnings;
use Test::More;
use IPC::ShareLite qw(:all);
use Errno qw(EACCES);

plan skip_all => 'needs root (to run children as uid 65534)' unless can_switch_to_nobody();

sub shm_perms { my %p = map { $_->{id} => $_->{mode} } sysv_segments(); \%p }
sub sem_perm {
  my $key = shift;
  my ( $r ) = grep { $_->{key} == $key } sysv_semaphores();
  return $r ? $r->{mode} : undef;
}

# A child of ours as uid/gid 65534 opening $key; returns "opened" or "errno|message".
my $AS_NOBODY = <<'EOC';
alarm 20;
my ($key, $create) = @ARGV;
$) = "65534 65534"; $> = 65534; die "still root\n" if $> == 0 || $) =~ /^0\b/;
$! = 0;
my $ok = eval { IPC::ShareLite->new(-key => $key, -create => $create); 1 };
my $e = $! + 0; (my $m = $@) =~ s/ at .*//s;
print $ok ? 'opened' : "$e|$m";
EOC

sub open_as_nobody {
  my ( $key, $create ) = @_;
  my ( $rc, $out ) = run_impl( 'ours', $AS_NOBODY, $key, $create ? 1 : 0 );
  return ( $rc, $out );
}

# ---- 0600 share opened by another uid -------------------------------------
for my $creator ( 'ours', 'orig' ) {
SKIP: {
    skip 'reference 0.17 not unpacked', 7 if $creator eq 'orig' && !have_ref();
    my $K = new_key( 4 );
    my ( $rc ) = run_impl( $creator, 'alarm 20; my $s = IPC::ShareLite->new(-key => shift, -create => 1, -mode => 0600); $s->store("secret"); 1', $K );
    is( $rc, 0, "$creator created a 0600 share" );
    for my $create ( 0, 1 ) {
      my ( $crc, $out ) = open_as_nobody( $K, $create );
      my ( $e, $m ) = split /\|/, $out, 2;
      is( $crc, 0, "uid 65534 child ran (create=$create)" );
      like( defined $m ? $m : $out, qr/^Failed to create share: Permission denied/,
        "${creator}'s 0600 share, uid 65534, create=$create: Permission denied" );
      is( $e, EACCES, "${creator}'s 0600 share, uid 65534, create=$create: \$! == EACCES" );
    }
    purge_key( $K );
  }
}
{
  my $K = new_key( 4 );
  my $s = IPC::ShareLite->new( -key => $K, -create => 1, -destroy => 1 );
  my ( $rc, $out ) = open_as_nobody( $K, 0 );
  is( $out, 'opened', 'control: a 0666 share opens as uid 65534' );
  undef $s;
}

# ---- -mode 0640 on every object -------------------------------------------
for my $how ( [ '-mode => 0640', -mode => 0640 ], [ '-flags => IPC_CREAT|0640', -flags => IPC_CREAT | 0640 ] ) {
  my ( $name, @opt ) = @$how;
  my $K = new_key( 4 );
  my $s = IPC::ShareLite->new( -key => $K, -create => 1, -destroy => 1, -size => 4096, @opt );
  my $check = sub {
    my ( $what, $n ) = @_;
    my @ids = chain_shmids( $K );
    is( scalar @ids, $n, "$name, $what: $n segments" );
    my $p = shm_perms();
    is( sprintf( '%o', $p->{ $ids[0] } // 0 ), '640', "$name, $what: head perms 640" );
    is_deeply( [ map { sprintf '%o', $p->{$_} // 0 } @ids[ 1 .. $#ids ] ], [ ('640') x ( $n - 1 ) ],
      "$name, $what: every chained segment perms 640" );
    is( sprintf( '%o', sem_perm( $K ) // 0 ), '640', "$name, $what: semaphore set perms 640" );
  };
  $s->store( 'v' x ( 5 * 4080 ) );
  $check->( 'after a 5-segment store', 5 );
  $s->store( 'short' );
  $check->( 'after shrinking', 1 );
  $s->store( 'w' x ( 7 * 4080 ) );
  $check->( 'after growing again', 7 );
  undef $s;
}

no_leaks_ok();
done_testing;
