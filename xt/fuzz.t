# Fuzzing the header fields and chain links of a share (ours only). Each round
# our module creates the share at one key (-size 1024) with a random value of
# 0 .. 12 KB (1 .. 13 segments), then this process corrupts one header through
# IPC::SysV shmwrite, on the head or on a chained segment (chain_shmids):
#   next_shmid := a random id that does not exist, -7, INT_MIN, -1 (chain cut
#                 short), the segment's own id, the head's id, an earlier
#                 segment's id (cycle), a removed segment's id, a decoy segment
#                 of the same size, a decoy of another size;
#   length     := negative, INT_MIN, huge (2**31-1), just past the chain, far
#                 past the chain, inside the chain;
#   random bytes anywhere in the 16-byte header.
# Then a child of ours with alarm(2) opens the share and calls fetch,
# num_segments, version, and stores a small value (one segment). The child
# must not crash (no signal) nor hang (the alarm), each call must succeed or
# croak with "IPC::ShareLite fetch() error" / "store() error" (num_segments may
# also return undef), fetch and num_segments must create no segment (the
# child's own segments in the listing of segments before and after), the child must
# create none at all, a successful store must be fetched back as stored, and
# no lock may be left held by the failed calls (a second handle of the child
# gets LOCK_EX|LOCK_NB), and a link to a segment of another size (no segment
# of this share) must not get that segment removed. The share is removed and
# recreated between rounds.
#
# Decoys are segments of this process, never foreign ones: a corrupted link
# is followed (and a store removes the surplus chain it names), so random ids
# are only ever ids that do not exist.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use IPC::SysV qw(IPC_PRIVATE IPC_CREAT IPC_RMID);
use lib 't/lib';
use SLTest;
use SLInterop qw(wait_bounded tmp_dir);
use IPC::ShareLite qw(:all);

plan skip_all => 'needs our module (0.18) in this process' if $IPC::ShareLite::VERSION eq '0.17';

my $ROUNDS = $ENV{SL_FUZZ_ROUNDS} || 1000;
my $SIZE   = 1024;
my $DATA   = $SIZE - 16;
my $key    = new_key( 4 );
my $tmp    = tmp_dir();

sub shm_table { map { $_->{id} => $_ } sysv_segments() }

my %decoy;    # same / other => shmid
sub decoys {
  my %t = shm_table();
  for my $d ( [ same => $SIZE ], [ other => 4096 ] ) {
    my ( $name, $size ) = @$d;
    next if defined $decoy{$name} && $t{ $decoy{$name} };
    my $id = own_shm( shmget( IPC_PRIVATE, $size, 0600 | IPC_CREAT ) // die "shmget decoy: $!" );
    shmwrite( $id, pack( 'iiII', -1, 0, 0, 0 ) . ( 'D' x 64 ), 0, 80 ) or die "shmwrite decoy: $!";
    $decoy{$name} = $id;
  }
}

sub removed_id {
  my $id = shmget( IPC_PRIVATE, $SIZE, 0600 | IPC_CREAT ) // die "shmget: $!";
  shmctl( $id, IPC_RMID, 0 );
  return $id;
}

sub absent_id {
  my %t = shm_table();
  while ( 1 ) {
    my $id = int rand 2**31;
    return $id unless $t{$id};
  }
}

my $CHILD = <<'EOC';
my ( $key ) = @ARGV;
$| = 1;
alarm 2;
# Segments with this process's pid that were not there when it started: a
# segment an earlier process of the same pid made outlives it.
my %pre;
use IPC::ShareLite::Inspect ();
sub mine {
  my @ids = grep { !$pre{$_} } map { $_->{id} } grep { $_->{cpid} == $$ } IPC::ShareLite::Inspect::list_segments();
  return join ',', sort @ids;
}
%pre = map { $_ => 1 } split /,/, mine();
END { print 'made ', mine(), "\n" }
sub one { my $t = shift; $t =~ s/\n/ /g; return $t }
my $s = eval { IPC::ShareLite->new( -key => $key ) };
print 'open ', ( $s ? 'ok' : 'err ' . one( $@ ) ), "\n";
exit 0 unless $s;
my $m0 = mine();
my $v = eval { $s->fetch };
print 'fetch ', ( defined $v ? 'ok ' . length $v : 'err ' . one( $@ ) ), "\n";
my $m1 = mine();
print 'fetch_created ', ( $m1 eq $m0 ? 'none' : "[$m1] after [$m0]" ), "\n";
my $n = eval { $s->num_segments };
print 'num_segments ', ( defined $n ? "ok $n" : $@ ? 'err ' . one( $@ ) : 'undef' ), "\n";
my $m2 = mine();
print 'num_segments_created ', ( $m2 eq $m1 ? 'none' : "[$m2] after [$m1]" ), "\n";
my $ver = eval { $s->version };
print 'version ', ( defined $ver ? "ok $ver" : $@ ? 'err ' . one( $@ ) : 'undef' ), "\n";
my $val = join '', map { chr( 32 + int rand 90 ) } 1 .. 1 + int rand 500;
my $st = eval { $s->store( $val ) };
print 'store ', ( $st ? 'ok' : 'err ' . one( $@ ) ), "\n";
if ( $st ) {
  my $back = eval { $s->fetch };
  print 'refetch ', ( !defined $back ? 'err ' . one( $@ ) : $back eq $val ? 'same' : 'different length ' . length $back ), "\n";
}
my $s2 = IPC::ShareLite->new( -key => $key );
my $l = $s2->lock( LOCK_EX | LOCK_NB );
print 'free ', ( defined $l ? $l : 'undef' ), "\n";
$s2->unlock;
print "end\n";
EOC

my %corrupt = (
  next_absent  => sub { pack 'i', absent_id() },
  next_minus7  => sub { pack 'i', -7 },
  next_intmin  => sub { pack 'i', -2**31 },
  next_cut     => sub { pack 'i', -1 },
  next_own     => sub { pack 'i', $_[0]{id} },
  next_head    => sub { pack 'i', $_[0]{ids}[0] },
  next_earlier => sub { my $i = $_[0]{idx}; pack 'i', $_[0]{ids}[ int rand( $i + 1 ) ] },
  next_removed => sub { pack 'i', removed_id() },
  next_decoy   => sub { pack 'i', $decoy{same} },
  next_other   => sub { pack 'i', $decoy{other} },
  len_negative => sub { pack 'i', -1 - int rand 2**30 },
  len_intmin   => sub { pack 'i', -2**31 },
  len_huge     => sub { pack 'i', 2**31 - 1 },
  len_past     => sub { pack 'i', @{ $_[0]{ids} } * $DATA + 1 + int rand 5000 },
  len_far      => sub { pack 'i', 2**20 + int rand 2**30 },
  len_inside   => sub { pack 'i', int rand( @{ $_[0]{ids} } * $DATA + 1 ) },
  random_bytes => sub { my $n = 1 + int rand 16; join '', map { chr int rand 256 } 1 .. $n },
);
my @kinds = sort keys %corrupt;

my ( %fail, %fmsg, %stat );
sub bad {
  my ( $what, $msg ) = @_;
  $fail{$what}++;
  push @{ $fmsg{$what} }, $msg if @{ $fmsg{$what} || [] } < 4;
}

my @checks = (
  'child neither crashes nor hangs', 'child opens the share',
  'fetch succeeds or croaks with "IPC::ShareLite fetch() error"',
  'num_segments succeeds, returns undef or croaks clearly',
  'version succeeds', 'store succeeds or croaks with "IPC::ShareLite store() error"',
  'fetch creates no segment', 'num_segments creates no segment',
  'a successful store is fetched back', 'no lock left held', 'the child creates no segment',
  'no segment of another size is removed',
);

my $t0 = time;
my $corruptions = 0;
for my $round ( 1 .. $ROUNDS ) {
  decoys();
  my $h = IPC::ShareLite->new( -key => $key, -create => 1, -size => $SIZE, -destroy => 0 );
  my $len = int rand 12_000;
  $h->store( join '', map { chr int rand 256 } 1 .. $len );
  my @ids = chain_shmids( $key );
  undef $h;

  my $kind = $kinds[ int rand @kinds ];
  my $idx  = @ids > 1 && rand() < 0.5 ? 1 + int rand( $#ids ) : 0;
  $idx = 0 if $kind =~ /^len_/ && rand() < 0.8;    # length matters in the head
  my $ctx  = { id => $ids[$idx], ids => \@ids, idx => $idx };
  my $bytes = $corrupt{$kind}->( $ctx );
  my $pos   = $kind =~ /^next_/ ? 0 : $kind =~ /^len_/ ? 4 : int rand( 17 - length $bytes );
  shmwrite( $ids[$idx], $bytes, $pos, length $bytes ) or die "shmwrite: $!";
  $corruptions++;
  my $where = sprintf( 'round %d: %s on %s of %d segments (value %d bytes)', $round, $kind, $idx ? "segment $idx" : 'head', scalar @ids, $len );
  $stat{$kind}++;

  my $out = "$tmp/out.$round";
  my $pid = spawn_impl( 'ours', { stdout => $out }, $CHILD, $key );
  my $rc  = wait_bounded( $pid, 15 );
  my $o   = do { local ( @ARGV, $/ ) = ( $out ); <> } // '';
  unlink $out;
  my %r = map { /^(\S+) ?(.*)$/ ? ( $1 => $2 ) : () } split /\n/, $o;

  if ( !defined $rc || $rc != 0 || !exists $r{end} ) {
    bad( 'child neither crashes nor hangs', "$where: exit " . ( $rc // 'hung (killed after 15 s)' ) . ( defined $rc && $rc == 128 + 14 ? ' (alarm: hung)' : '' ) . "; output: $o" );
  }
  if ( ( $r{open} // '' ) ne 'ok' ) {
    bad( 'child opens the share', "$where: " . ( $r{open} // 'no output' ) );
  }
  else {
    my $f = $r{fetch} // '';
    $stat{fetch_error}++ if $f =~ /^err/;
    bad( 'fetch succeeds or croaks with "IPC::ShareLite fetch() error"', "$where: $f" )
      unless $f =~ /^ok \d+$/ || $f =~ /^err IPC::ShareLite fetch\(\) error: \S/;
    bad( 'fetch creates no segment', "$where: $r{fetch_created}" ) unless ( $r{fetch_created} // '' ) eq 'none';
    my $n = $r{num_segments} // '';
    bad( 'num_segments succeeds, returns undef or croaks clearly', "$where: $n" )
      unless $n =~ /^ok \d+$/ || $n eq 'undef' || $n =~ /^err IPC::ShareLite \w+\(\) error: \S/;
    bad( 'num_segments creates no segment', "$where: $r{num_segments_created}" ) unless ( $r{num_segments_created} // '' ) eq 'none';
    bad( 'version succeeds', "$where: " . ( $r{version} // '' ) ) unless ( $r{version} // '' ) =~ /^ok \d+$/;
    my $s = $r{store} // '';
    $stat{store_error}++ if $s =~ /^err/;
    bad( 'store succeeds or croaks with "IPC::ShareLite store() error"', "$where: $s" )
      unless $s eq 'ok' || $s =~ /^err IPC::ShareLite store\(\) error: \S/;
    bad( 'a successful store is fetched back', "$where: " . ( $r{refetch} // '' ) ) if $s eq 'ok' && ( $r{refetch} // '' ) ne 'same';
    bad( 'no lock left held', "$where: free " . ( $r{free} // '' ) ) unless ( $r{free} // '' ) eq '1';
  }
  my %t = shm_table();
  # What the child made, as it listed it at its end (new since it started,
  # with its pid): never what its pid shows now, an earlier process of the
  # same pid may have made that.
  my @made = grep { $t{$_} } split /,/, $r{made} // '';
  bad( 'the child creates no segment', "$where: @made" ) if @made;

  # A link to a segment of another size names no segment of this share:
  # following it must not destroy it (0.17 croaks on the size, the contract says
  # such a chain is refused).
  if ( $kind eq 'next_other' && !$t{ $decoy{other} } ) {
    $stat{removed_decoy_other}++;
    bad( 'no segment of another size is removed', "$where: store " . ( $r{store} // '' ) );
  }
  $stat{removed_decoy_same}++  if $kind eq 'next_decoy' && !$t{ $decoy{same} };

  # Recreate: remove with ours where it still can, then whatever is left.
  eval { IPC::ShareLite->new( -key => $key )->remove };
  purge_key( $key );
  shmctl( $_, IPC_RMID, 0 ) for @ids, @made;
  last if time - $t0 > 150;
}
my $el = time - $t0;
note sprintf( '%d corruptions in %.1f s; fetch croaked %d times, store %d times', $corruptions, $el, $stat{fetch_error} // 0, $stat{store_error} // 0 );
note 'per kind: ' . join( ', ', map { "$_ " . ( $stat{$_} // 0 ) } @kinds );
note sprintf( 'a store removed the decoy of another size %d times, the decoy of the same size %d times (the corrupted link named it)',
  $stat{removed_decoy_other} // 0, $stat{removed_decoy_same} // 0 );
cmp_ok( $corruptions, '>=', $ROUNDS, "$corruptions corruptions applied" );
for my $c ( @checks ) {
  is( $fail{$c} // 0, 0, "$c (all rounds)" ) or diag join "\n", @{ $fmsg{$c} };
}
for my $c ( sort grep { my $k = $_; !grep { $_ eq $k } @checks } keys %fail ) {
  fail( $c ) ;
  diag join "\n", @{ $fmsg{$c} };
}

shmctl( $_, IPC_RMID, 0 ) for values %decoy;
no_leaks_ok();
done_testing;
