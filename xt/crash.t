# Writers killed at random moments (SIGKILL), two passes: the killed writer is
# ours in the first, the original 0.17 in the second. Share created by ours
# with -size 4096, so a value of 1 B .. 600 KB takes 1 .. 147 segments and the
# chain grows and shrinks a lot. Each round:
#  - a writer child opens the share and does up to 1,000 stores of values of
#    random sizes, logging "S seq len" before and "D seq" after each store;
#    the parent SIGKILLs it 0-20 ms after it is ready (then starts a new one
#    next round). A 0.17 writer takes a fresh handle for each store (a 0.17
#    handle never reuses chain keys: it would walk out of this file's keys).
#  - a fresh handle of ours and a 0.17 child both get LOCK_EX|LOCK_NB at once
#    (SEM_UNDO released the dead writer's lock) and fetch the same whole value:
#    the value before the interrupted store, the one it was storing, or ''
#    (the defined result of an interrupted store); values are deterministic
#    functions of (writer, round, seq, len) with a self-describing header, so
#    anything else (a torn value) shows;
#  - the next store that grows the chain (600 KB) succeeds for ours and for
#    0.17: one of them (alternating) stores directly on what the dead writer
#    left, the other stores '' then 600 KB; every process sees the result;
#  - no lock is left held.
# Every 50 rounds (so that orphans cannot pile up to the system's SHMMNI) and
# at the end, the share is removed with our module and created anew: nothing
# of it may remain, in particular no IPC_PRIVATE segment of size 4096 created
# by a killed writer of ours (segments unlinked, or never linked, when it
# died), and no keyed segment at this file's keys (key .. key+$SPAN). Keyed segments that no
# link reaches are counted and removed after each round (in the ours pass
# they may only come from 0.17 segments cut off by a killed writer of ours:
# must be none).
#
# Known defects of 0.17 (doc/FORMAT.md, section 6), expected only in the 0.17
# pass and reported as TODO: a 0.17 writer killed between removing surplus
# segments and cutting the chain leaves a dangling link, on which 0.17's next
# growing store fails (ours must repair it); one killed while creating or
# removing segments leaves keyed orphans (counted and removed after each round).

use strict;
use warnings;
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time sleep);
use IPC::SysV qw(IPC_RMID);
use lib 't/lib';
use SLTest;
use SLInterop;
use IPC::ShareLite qw(:all);

need_ref();
plan skip_all => 'needs our module (0.18) in this process' if $IPC::ShareLite::VERSION eq '0.17';

my $ROUNDS = $ENV{SL_CRASH_ROUNDS} || 200;    # per pass
my $SIZE   = 4096;
my $BIG    = 600_000;
my $EPOCH  = 50;    # rounds between removals: orphans must not pile up to SHMMNI

my $VALUE_LIB = <<'EOC';
# The value number $seq of writer $tag in round $round, $len bytes: a header
# "tag:round:seq:len:" then 8-byte blocks; short values are a prefix of it.
sub cv {
  my ( $tag, $round, $seq, $len ) = @_;
  my $h   = sprintf( '%s:%04d:%04d:%06d:', $tag, $round, $seq, $len );
  my $blk = sprintf( '%s%03d%04d', $tag, $round % 1000, $seq );
  my $n   = $len > length $h ? $len - length $h : 0;
  return substr( $h . substr( $blk x ( int( $n / 8 ) + 1 ), 0, $n ), 0, $len );
}
sub rand_len {
  my $r = rand;
  return $r < 0.2 ? 1 + int rand 64 : $r < 0.45 ? 65 + int rand 8192 : 8257 + int rand( 600_000 - 8257 );
}
EOC
eval $VALUE_LIB;
die $@ if $@;

# A whole value carrying its own header (any writer, any round)?
sub self_whole {
  my $v = shift;
  return 0 unless $v =~ /\A([A-Z]):(\d{4}):(\d{4}):(\d{6}):/;
  return length( $v ) == $4 && $v eq cv( $1, $2, $3, $4 );
}

my $WRITER = <<'EOC';
my ( $key, $size, $round, $tag ) = @ARGV;
srand( $$ ^ time );
$| = 1;
my $s = open_share( key => $key, size => $size );
print "ready\n";
for my $seq ( 1 .. 1000 ) {
  my $len = rand_len();
  print "S $seq $len\n";
  # 0.17: a fresh handle per store, so chain keys restart at key+1
  $s = open_share( key => $key, size => $size ) if $ORIG;
  $s->store( cv( $tag, $round, $seq, $len ) );
  print "D $seq\n";
}
print "finished\n";
EOC

# 0.17 checker: LOCK_EX|LOCK_NB and fetch on what the dead writer left, then
# (on "go") the growing store.
my $CHECKER = <<'EOC';
use POSIX ();
my ( $key, $size, $dir, $round, $first, $go ) = @ARGV;
$| = 1;
my $s = open_share( key => $key, size => $size );
my $l = $s->lock( LOCK_EX | LOCK_NB );
my $v = eval { $s->fetch };
print 'lock ', ( defined $l ? $l : 'undef' ), "\n";
print 'fetch ', ( defined $v ? length( $v ) . ' ' . md5_hex( $v ) : "error $@" ), "\n";
print 'unlock ', ( $s->unlock ? 1 : 0 ), "\n";
print "phase1\n";
wait_file( "$dir/go.$go", 30 );
my $ok = eval {
  $s->store( '' ) unless $first;
  $s->store( cv( 'Q', $round, 0, 600_000 ) );
  1;
};
print $ok ? "store ok\n" : "store error $@";
# a failed 0.17 store keeps the exclusive lock without knowing it: a fetch, or
# DESTROY at exit, would wait for itself
POSIX::_exit( 0 ) unless $ok;
my $w = eval { $s->fetch };
print 'after ', ( defined $w ? length( $w ) . ' ' . md5_hex( $w ) : 'error' ), "\n";
EOC

my $tmp = tmp_dir();
# 0.17 chains a 600 KB value at key+1 .. key+147, and further when keys on
# the way still hold segments a killed 0.17 writer left (it skips them): seen
# past key+256 under load. The keys up to key+$SPAN are this file's.
my $SPAN = 1024;
my $key  = new_key( $SPAN );

sub slurp { my $f = shift; open my $fh, '<', $f or return ''; local $/; my $t = <$fh>; return $t // '' }

sub wait_text {
  my ( $file, $re, $cap, $pid ) = @_;
  my $end = time + $cap;
  while ( time < $end ) {
    my $t = slurp( $file );
    return $t if $t =~ $re;
    sleep 0.0005;
  }
  return undef;
}

# shmid => { key, size, cpid, nattch } for every segment
sub shm_table { map { $_->{id} => $_ } sysv_segments() }

# Walk the chain by shmid: (ids, dangling?) - dangling when a link names a
# segment that does not exist any more.
sub chain_state {
  my $id = shmget( $key, 0, 0 );
  return ( [], 0 ) unless defined $id;
  my ( @ids, %seen );
  while ( $id != -1 && !$seen{$id}++ ) {
    return ( \@ids, 1 ) if $id < 0;
    my ( $next ) = SLTest::header_of( $id ) or return ( \@ids, 1 );
    push @ids, $id;
    $id = $next;
  }
  return ( \@ids, 0 );
}

# Run $code with a 20 s alarm; returns (result, error). (Not SLTest's timed,
# which dies on the timeout.)
sub attempt {
  my $code = shift;
  my @r;
  my $ok = eval {
    local $SIG{ALRM} = sub { die "timeout (20 s)\n" };
    alarm 20;
    @r = $code->();
    alarm 0;
    1;
  };
  alarm 0;
  return $ok ? ( $r[0], undef ) : ( undef, $@ || 'unknown error' );
}

sub run_pass {
  my $impl = shift;                       # implementation of the killed writer
  my $wtag = $impl eq 'ours' ? 'W' : 'V';
  my ( %fail, %fmsg, %todo, %stat );
  my $bad = sub {
    my ( $what, $msg ) = @_;
    $fail{$what}++;
    push @{ $fmsg{$what} }, $msg if @{ $fmsg{$what} || [] } < 3;
  };

  my ( %wpids, $prev, $priv );
  my $t0 = time;
  for my $round ( 1 .. $ROUNDS ) {
    if ( $round % $EPOCH == 1 || $EPOCH == 1 ) {
      my $h0 = IPC::ShareLite->new( -key => $key, -create => 1, -exclusive => 1, -size => $SIZE, -destroy => 0 );
      $bad->( 'ours creates the share with segment size 4096', "round $round: " . $h0->size ) unless $h0->size == $SIZE;
      $prev = cv( 'I', 0, 0, 1000 );
      $h0->store( $prev );
      undef $h0;
    }
    my $log = "$tmp/$impl.w.$round";
    my $pid = spawn_child( $impl, { stdout => $log }, $VALUE_LIB . $WRITER, $key, $SIZE, $round, $wtag );
    $wpids{$pid} = [ int time, undef ];
    unless ( defined wait_text( $log, qr/^ready$/m, 20 ) ) {
      $bad->( 'writer opens the share', "round $round: " . slurp( $log ) );
      kill 'KILL', $pid;
      wait_bounded( $pid, 10 );
      $wpids{$pid}[1] = time;
      last;
    }
    my $nap = rand 0.020;
    sleep $nap;
    kill 'KILL', $pid;
    my $rc = wait_bounded( $pid, 10 );
    $wpids{$pid}[1] = time;
    $stat{killed}++ if defined $rc && $rc == 128 + 9;
    $bad->( 'writer dies of SIGKILL', "round $round: exit " . ( $rc // 'hung' ) ) unless defined $rc && $rc == 128 + 9;

    # What may be in the share now.
    my @lines = grep { /^[SD] \d+/ } split /\n/, slurp( $log );
    my ( @started, %done );
    for ( @lines ) {
      my ( $t, $seq, $len ) = split ' ';
      if ( $t eq 'S' ) { push @started, [ $seq, $len ] } else { $done{$seq} = 1 }
    }
    $stat{stores} += keys %done;
    my @cand;
    if ( !@started ) {
      @cand = ( $prev );
    }
    else {
      my ( $seq, $len ) = @{ $started[-1] };
      my $new = cv( $wtag, $round, $seq, $len );
      if ( $done{$seq} ) {
        @cand = ( $new );
      }
      else {
        my $old = @started > 1 ? cv( $wtag, $round, @{ $started[-2] } ) : $prev;
        @cand = ( $old, $new, '' );
      }
    }
    my ( $ids, $dangling ) = chain_state();
    $stat{dangling}++ if $dangling;

    # A fresh handle of ours: the lock is free, the value whole.
    my ( $h, $err ) = attempt( sub { IPC::ShareLite->new( -key => $key ) } );
    unless ( $h ) { $bad->( 'ours opens the share', "round $round: $err" ); last }
    my ( $l, $e1 ) = attempt( sub { $h->lock( LOCK_EX | LOCK_NB ) } );
    $bad->( 'ours gets LOCK_EX|LOCK_NB after the kill', "round $round: " . ( $e1 // $l // "undef $!" ) ) unless defined $l && $l == 1;
    my ( $v, $e2 ) = attempt( sub { $h->fetch } );
    if ( !defined $v ) {
      $bad->( 'ours fetches after the kill', "round $round: $e2" );
    }
    elsif ( !grep { $v eq $_ } @cand ) {
      $bad->( 'ours fetches old, new or empty value', "round $round: length " . length( $v ) . ' head ' . substr( $v, 0, 24 ) . ( self_whole( $v ) ? ' (whole but unexpected)' : ' (torn)' ) );
    }
    else {
      $stat{ $v eq '' ? 'empty' : $v eq $cand[0] ? ( @cand == 1 ? 'done' : 'old' ) : 'new' }++;
    }
    $h->unlock;

    # 0.17 sees the same, then one of the two stores on what the writer left.
    my $first = $round % 2 ? 'orig' : 'ours';
    my $clog  = "$tmp/$impl.c.$round";
    my $cpid  = spawn_child( 'orig', { stdout => $clog }, $VALUE_LIB . $CHECKER, $key, $SIZE, $tmp, $round, $first eq 'orig' ? 1 : 0, "$impl$round" );
    my $c1    = wait_text( $clog, qr/^phase1$/m, 20 );
    if ( !defined $c1 ) {
      $bad->( '0.17 checker opens, locks, fetches', "round $round: " . slurp( $clog ) );
    }
    else {
      $bad->( '0.17 gets LOCK_EX|LOCK_NB after the kill', "round $round: $c1" ) unless $c1 =~ /^lock 1$/m && $c1 =~ /^unlock 1$/m;
      my $want = defined $v ? length( $v ) . ' ' . md5_hex( $v ) : '?';
      $bad->( '0.17 fetches the same value as ours', "round $round: $c1 (ours: $want)" ) unless $c1 =~ /^fetch \Q$want\E$/m;
    }
    my $big_ours = cv( 'P', $round, 0, $BIG );
    my $big_orig = cv( 'Q', $round, 0, $BIG );
    my $ours_store = sub {
      my $pre = shift;
      my ( $ok, $e ) = attempt( sub { $h->store( '' ) if $pre; $h->store( $big_ours ) } );
      if ( !$ok ) {
        $bad->( 'ours: next growing store succeeds', "round $round (" . ( $pre ? 'after storing empty' : 'on the dead writer\'s chain' ) . ( $dangling ? ', dangling link' : '' ) . "): $e" );
        return;
      }
      my ( $back ) = attempt( sub { $h->fetch } );
      $bad->( 'ours fetches what it stored', "round $round" ) unless defined $back && $back eq $big_ours;
      $prev = $big_ours;
    };
    $ours_store->( 0 ) if $first eq 'ours';
    put_file( "$tmp/go.$impl$round", 1 );
    my $crc = wait_bounded( $cpid, 30 );
    my $cout = slurp( $clog );
    $bad->( '0.17 checker exits cleanly', "round $round: exit " . ( $crc // 'hung' ) . ": $cout" ) unless defined $crc && $crc == 0;
    if ( $cout =~ /^store ok$/m ) {
      my ( $back ) = attempt( sub { $h->fetch } );
      $bad->( 'ours fetches what 0.17 stored', "round $round" ) unless defined $back && $back eq $big_orig;
      $bad->( '0.17 fetches what it stored', "round $round" ) unless $cout =~ /^after $BIG \Q${\ md5_hex( $big_orig )}\E$/m;
      $prev = $big_orig;
    }
    elsif ( $dangling && $impl eq 'orig' && $first eq 'orig' ) {
      # 0.17 defect: its growing store follows the dangling link (EINVAL)
      $todo{'0.17 store on a dangling link left by a killed 0.17 writer'}++;
      $prev = '';
    }
    else {
      $bad->( '0.17: next growing store succeeds', "round $round (" . ( $first eq 'orig' ? 'on the dead writer\'s chain' : 'after storing empty' ) . ( $dangling ? ', dangling link' : '' ) . "): $cout" );
      my ( $back ) = attempt( sub { $h->fetch } );
      $prev = $back if defined $back;
    }
    $ours_store->( 1 ) if $first eq 'orig';

    my @sem = sem_values( $key );
    $bad->( 'no lock left held', "round $round: sems @sem" ) unless "@sem" eq '1 0 0';
    undef $h;

    # Keyed segments in our block that no chain link reaches (0.17 orphans).
    my ( $live ) = chain_state();
    my %live = map { $_ => 1 } @$live;
    my %t    = shm_table();
    my @orph = grep { $t{$_}{key} > $key && $t{$_}{key} <= $key + $SPAN && !$live{$_} } keys %t;
    if ( @orph ) {
      $stat{keyed_orphans} += @orph;
      push @{ $stat{orphan_info} }, "round $round: " . @orph . ' keyed segments outside the chain, created by ' . join( ',', sort keys %{ { map { ( ( $wpids{ $t{$_}{cpid} } ? 'writer ' : '' ) . $t{$_}{cpid} => 1 ) } @orph } } ) . " (checker $cpid)";
      shmctl( $_, IPC_RMID, 0 ) for @orph;
    }
    if ( $round % $EPOCH == 0 || $round == $ROUNDS ) {
      $priv += remove_and_check( $impl, $round, \%wpids, $bad );
    }
  }
  my $el = time - $t0;
  note sprintf( '%s pass: %d rounds, %d writers killed, %d stores completed by them, %.1f s', $impl, $ROUNDS, $stat{killed} // 0, $stat{stores} // 0, $el );
  note "$impl pass: after the kill the share held: " . join( ', ', map { "$_ " . ( $stat{$_} // 0 ) } qw(done old new empty) ) . '; dangling links seen: ' . ( $stat{dangling} // 0 );

  note "$impl pass: $priv unlinked segments of killed writers of ours in all before the removals";

  for my $what ( sort keys %fail ) {
    is( $fail{$what}, 0, "$impl pass: $what" ) or diag join "\n", @{ $fmsg{$what} };
  }
  my @checks = (
    'ours gets LOCK_EX|LOCK_NB after the kill', 'ours fetches old, new or empty value',
    '0.17 gets LOCK_EX|LOCK_NB after the kill', '0.17 fetches the same value as ours',
    'ours: next growing store succeeds',        '0.17: next growing store succeeds',
    'no lock left held', 'share removed', 'no IPC_PRIVATE segment left', 'no keyed segment left',
  );
  pass( "$impl pass: $_ ($ROUNDS rounds)" ) for grep { !$fail{$_} } @checks;
  cmp_ok( $stat{killed} // 0, '>=', $ROUNDS * 0.9, "$impl pass: writers were killed while working" );
  cmp_ok( $stat{stores} // 0, '>', $ROUNDS, "$impl pass: killed writers completed stores before dying" );
  if ( $impl eq 'ours' ) {
    is( $stat{dangling} // 0, 0, 'ours pass: a killed writer of ours never leaves a dangling link' );
    is( $stat{keyed_orphans} // 0, 0, 'ours pass: no keyed segment outside the chain' )
      or diag join "\n", @{ $stat{orphan_info} }[ 0 .. ( @{ $stat{orphan_info} } > 5 ? 4 : $#{ $stat{orphan_info} } ) ];
  }
  else {
    TODO: {
      local $TODO = '0.17 defect: its store follows a dangling link left by a killed 0.17 writer (EINVAL)';
      is( $todo{'0.17 store on a dangling link left by a killed 0.17 writer'} // 0, 0, '0.17 pass: 0.17 growing store directly on a dangling link succeeds' );
    }
    TODO: {
      local $TODO = '0.17 defect: a killed 0.17 writer leaves keyed orphans (removed after each round here)';
      is( $stat{keyed_orphans} // 0, 0, '0.17 pass: no keyed segment outside the chain' );
    }
  }

}

# Was segment row $r made by one of our writers? Its creator pid is a
# writer's and it was made while that writer lived (a pid is reused only
# after its process is gone).
sub by_writer {
  my ( $r, $wpids ) = @_;
  my $w = $wpids->{ $r->{cpid} } or return 0;
  return $r->{ctime} >= $w->[0] && ( !defined $w->[1] || $r->{ctime} <= $w->[1] );
}

# Remove the share with ours: nothing of it may remain. Returns how many
# unlinked segments of killed writers there were before.
sub remove_and_check {
  my ( $impl, $round, $wpids, $bad ) = @_;
  my %t = shm_table();
  my ( $live ) = chain_state();
  my %live = map { $_ => 1 } @$live;
  my $priv = grep { $t{$_}{key} == 0 && $t{$_}{size} == $SIZE && by_writer( $t{$_}, $wpids ) && !$live{$_} } keys %t;
  my @ids = chain_shmids( $key );
  my ( $ok, $e ) = attempt( sub { my $r = IPC::ShareLite->new( -key => $key ); $r->remove; 1 } );
  $bad->( 'share removed', "round $round: ours removes the share: $e" ) unless $ok;
  $bad->( 'share removed', "round $round: head, chain or semaphore set left" ) unless share_gone( $key, @ids );
  %t = shm_table();
  my @left = grep { $t{$_}{key} == 0 && $t{$_}{size} == $SIZE && by_writer( $t{$_}, $wpids ) } keys %t;
  $bad->( 'no IPC_PRIVATE segment left', "round $round: $priv unlinked before the removal, " . @left . " left after it:\n" . join "\n",
    map { my $b; shmread( $_, $b, 0, 16 ); "  shmid $_ nattch $t{$_}{nattch} header " . unpack( 'H*', $b // '' ) } @left[ 0 .. ( $#left < 2 ? $#left : 2 ) ] ) if @left;
  # Removed only when its header proves it a chained segment of this share
  # (our tag and this head's shmid); any other is reported, never touched.
  for my $id ( @left ) {
    my ( undef, undef, $state, $head ) = @ids ? SLTest::header_of( $id ) : () or next;
    shmctl( $id, IPC_RMID, 0 ) if $state == 0x534c4348 && $head == $ids[0];    # our tag, this head
  }
  my @inblock = grep { $t{$_}{key} >= $key && $t{$_}{key} <= $key + $SPAN } keys %t;
  $bad->( 'no keyed segment left', "round $round: " . @inblock . ' keyed segments' ) if @inblock;
  shmctl( $_, IPC_RMID, 0 ) for @inblock;
  return $priv;
}

my $T = time;
for my $impl ( 'ours', 'orig' ) {
  subtest "writer of $impl killed $ROUNDS times" => sub {
    eval { run_pass( $impl ); 1 } or fail( "pass died: $@" );
  };
  purge_key( $key );
}
note sprintf( 'total runtime %.1f s', time - $T );

no_leaks_ok();
done_testing;
