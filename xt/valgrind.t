# Memory errors and leaks of our module under valgrind (memcheck): a perl
# script (run under valgrind with PERL_DESTRUCT_LEVEL=2, suppressions in
# xt/valgrind.supp) exercises our IPC::ShareLite: open/create, store and fetch
# at several sizes (empty, one segment, exactly full, multi-segment, shrink
# back, unchanged re-fetch), locks (shared, exclusive, LOCK_NB and a timeout
# that expires, conversion), version, num_segments, a private share, croaking
# calls (wide character store, unknown argument, a corrupted header fetch
# inside eval), remove. The valgrind log is parsed: 0 invalid reads/writes/
# frees anywhere, and 0 "definitely lost" blocks and 0 uses of uninitialised
# values whose stack has a frame of ours (sharelite/ShareLite/sl_). Perl's own
# leaks at exit do not count (valgrind's exit code 42 alone fails nothing).
# The log parser is checked on a made-up log first. Then four files of the
# Perl suite run under valgrind the same way.

use strict;
use warnings;
use Test::More;
use File::Spec;
use POSIX ();
use Time::HiRes qw(time);
use lib 't/lib';
use SLTest;
use SLInterop qw(wait_bounded tmp_dir);

my ( $vg ) = grep { -x } map { File::Spec->catfile( $_, 'valgrind' ) } File::Spec->path;
plan skip_all => 'valgrind not on PATH' unless $vg;

my $OURS = qr/sharelite|ShareLite|\bsl_/;

# (invalid accesses anywhere, definite leaks of ours, uninitialised of ours,
#  other errors of ours, error summary, [examples])
sub parse_log {
  my $text = shift;
  my ( @blocks, $cur );
  for my $line ( split /\n/, $text ) {
    $line =~ s/^==\d+==\s?//;
    if ( $line =~ /^\s*$/ ) {
      push @blocks, $cur if defined $cur;
      undef $cur;
      next;
    }
    $cur .= "$line\n";
  }
  push @blocks, $cur if defined $cur;
  my %n = ( invalid => 0, definite => 0, uninit => 0, other => 0 );
  my @ex;
  my $summary;
  for my $b ( @blocks ) {
    $summary = $1 if $b =~ /ERROR SUMMARY: (\d+) errors/;
    my $ours = $b =~ /^\s+(?:at|by) .*$OURS/m;
    if ( $b =~ /^(?:Invalid (?:read|write|free)|Mismatched free|Source and destination overlap)/ ) {
      $n{invalid}++;
      push @ex, $b;
    }
    elsif ( $b =~ /are definitely lost in loss record/ ) {
      next unless $ours;
      $n{definite}++;
      push @ex, $b;
    }
    elsif ( $b =~ /^(?:Conditional jump|Use of uninitialised|Syscall param .* uninitialised)/ ) {
      next unless $ours;
      $n{uninit}++;
      push @ex, $b;
    }
    elsif ( $b =~ /^(?:Argument .* fishy|Invalid|.*overlap)/ && $ours ) {
      $n{other}++;
      push @ex, $b;
    }
  }
  return ( \%n, $summary, \@ex );
}

# The parser on a made-up log: one leak of ours, one of perl, one invalid read.
{
  my $log = <<'EOL';
==1== Memcheck, a memory error detector
==1== 
==1== Invalid read of size 4
==1==    at 0x4: Perl_sv_setsv_flags (in /usr/bin/perl)
==1==    by 0x5: main (in /usr/bin/perl)
==1== 
==1== 24 bytes in 1 blocks are definitely lost in loss record 3 of 9
==1==    at 0x1: malloc (vg_replace_malloc.c:381)
==1==    by 0x2: sharelite::share::Share::open_raw (share.rs:140)
==1==    by 0x3: sl_share_open (in /work/main/blib/arch/auto/IPC/ShareLite/ShareLite.so)
==1== 
==1== 100 bytes in 1 blocks are definitely lost in loss record 4 of 9
==1==    at 0x1: malloc (vg_replace_malloc.c:381)
==1==    by 0x2: Perl_safesysmalloc (in /usr/bin/perl)
==1== 
==1== ERROR SUMMARY: 3 errors from 3 contexts (suppressed: 0 from 0)
EOL
  my ( $n, $sum ) = parse_log( $log );
  is_deeply( [ @$n{qw(invalid definite uninit)}, $sum ], [ 1, 1, 0, 3 ], 'log parser: counts invalid reads, and only leaks of ours' );
}

my $key  = new_key( 4 );
my $tmp  = tmp_dir();
my $supp = File::Spec->rel2abs( 'xt/valgrind.supp' );
my $root = root_dir();

my $script = <<'EOS';
use strict;
use warnings;
use IPC::ShareLite qw(:all);
use IPC::SysV ();
die "wrong implementation\n" if $IPC::ShareLite::VERSION eq '0.17';
my $key = shift;
my $s = IPC::ShareLite->new( -key => $key, -create => 'yes', -destroy => 'no', -size => 4096 );
my $d = $s->size - 16;
for my $len ( 0, 1, 100, $d, $d + 1, 50_000, 300_000, 10, 0, 70_000, 3 * $d ) {
  my $v = join '', map { chr( 65 + $_ % 26 ) } 0 .. $len - 1;
  $s->store( $v );
  $s->fetch eq $v or die "fetch after store of $len\n";
  $s->fetch eq $v or die "unchanged re-fetch of $len\n";
  my $n = $s->num_segments;
  $n == ( $len ? int( ( $len + $d - 1 ) / $d ) : 1 ) or die "num_segments $n for $len\n";
  $s->version or die "version\n";
}
$s->lock( LOCK_SH ) == 1 or die "lock sh\n";
my $x = $s->fetch;
$s->lock( LOCK_EX ) == 1 or die "convert to ex\n";
$s->store( 'y' x 9000 );
$s->unlock or die "unlock\n";
my $o = IPC::ShareLite->new( $key );    # positional, a second handle
$o->lock( LOCK_EX ) or die "other lock\n";
$s->lock( LOCK_EX | LOCK_NB ) == 0 or die "nb should fail\n";
$s->lock( LOCK_SH, 0.05 ) == 0 or die "timeout should expire\n";
$o->unlock;
$s->lock( LOCK_EX | LOCK_NB ) == 1 or die "nb\n";
$s->unlock;
undef $o;
my $p = IPC::ShareLite->new();          # private share
$p->store( 'p' x 20_000 );
$p->fetch eq 'p' x 20_000 or die "private\n";
$p->remove;
undef $p;
eval { $s->store( "\x{263a}" ) };
$@ =~ /Wide character/ or die "wide: $@\n";
eval { IPC::ShareLite->new( -key => $key, -bogus => 1 ) };
$@ =~ /unexpected parameter/ or die "bogus: $@\n";
my $id = shmget( $key, 0, 0 );
shmwrite( $id, pack( 'i', 2**31 - 1 ), 4, 4 ) or die "shmwrite\n";
eval { $s->fetch };
$@ =~ /IPC::ShareLite fetch\(\) error/ or die "corrupt fetch: $@\n";
shmwrite( $id, pack( 'i', -5 ), 4, 4 ) or die "shmwrite\n";
eval { $s->fetch };
$@ =~ /IPC::ShareLite fetch\(\) error/ or die "negative fetch: $@\n";
$s->store( 'repaired' );
$s->fetch eq 'repaired' or die "repaired\n";
$s->remove;
eval { $s->fetch };
$@ or die "fetch after remove\n";
undef $s;
print "done\n";
EOS
my $file = "$tmp/exercise.pl";
open my $fh, '>', $file or die;
print {$fh} $script;
close $fh;

my $log = "$tmp/valgrind.log";
my $out = "$tmp/out";
my $t0  = time;
my $pid = fork;
die "fork: $!" unless defined $pid;
if ( !$pid ) {
  $ENV{PERL_DESTRUCT_LEVEL} = 2;
  delete @ENV{qw(PERL5LIB PERLLIB)};
  open STDOUT, '>', $out or POSIX::_exit( 97 );
  exec( $vg, '--tool=memcheck', '--error-exitcode=42', '--errors-for-leak-kinds=definite', '--leak-check=full',
    '--num-callers=40', "--suppressions=$supp", "--log-file=$log",
    $^X, "-I$root/blib/arch", "-I$root/blib/lib", $file, $key ) or POSIX::_exit( 98 );
}
my $rc = wait_bounded( $pid, 170 );
note sprintf( 'valgrind run: %.1f s, exit %s', time - $t0, $rc // 'killed after 170 s' );
ok( defined $rc && ( $rc == 0 || $rc == 42 ), 'valgrind ran the script to its end (exit 0, or 42 for errors judged below)' )
  or diag do { local ( @ARGV, $/ ) = ( $log ); <> };
my $o = do { local ( @ARGV, $/ ) = ( $out ); <> } // '';
is( $o, "done\n", 'the script checked every result and finished' );

my $text = do { local ( @ARGV, $/ ) = ( $log ); <> } // '';
my ( $n, $summary, $ex ) = parse_log( $text );
ok( defined $summary, 'valgrind wrote its error summary' );
is( $n->{invalid},  0, 'no invalid read, write or free' );
is( $n->{definite}, 0, 'no block definitely lost from our code' );
is( $n->{uninit},   0, 'no use of uninitialised values in our code' );
is( $n->{other},    0, 'no other memcheck error in our code' );
diag join "\n", @$ex[ 0 .. ( $#$ex < 4 ? $#$ex : 4 ) ] if @$ex;
note 'valgrind error summary: ' . ( $summary // '?' ) . ' errors (perl\'s own included)';
if ( defined $rc && $rc == 42 && !@$ex ) {
  note 'valgrind exit 42 comes from errors outside our code';
}

# Files of the Perl suite itself, each under valgrind the same way (the
# processes they start run without it), judged by the same log checks.
for my $t ( qw( t/01-sharelite.t t/03-methods.t t/04-errors.t t/07-fetch-cache.t ) ) {
  ( my $name = $t ) =~ s{\W}{_}g;
  my ( $tlog, $tout ) = ( "$tmp/$name.log", "$tmp/$name.out" );
  my $t1   = time;
  my $tpid = fork;
  die "fork: $!" unless defined $tpid;
  if ( !$tpid ) {
    $ENV{PERL_DESTRUCT_LEVEL} = 2;
    delete @ENV{qw(PERL5LIB PERLLIB)};
    chdir $root or POSIX::_exit( 96 );
    open STDOUT, '>', $tout or POSIX::_exit( 97 );
    open STDERR, '>&', \*STDOUT or POSIX::_exit( 97 );
    # No --error-exitcode: forked children run under valgrind too, and the
    # tests check their exit codes. One log per process.
    exec( $vg, '--tool=memcheck', '--errors-for-leak-kinds=definite', '--leak-check=full',
      '--num-callers=40', "--suppressions=$supp", "--log-file=$tlog.%p",
      $^X, "-I$root/blib/arch", "-I$root/blib/lib", $t ) or POSIX::_exit( 98 );
  }
  my $trc = wait_bounded( $tpid, 600 );
  note sprintf( '%s under valgrind: %.1f s, exit %s', $t, time - $t1, $trc // 'killed after 600 s' );
  my $tap = do { local ( @ARGV, $/ ) = ( $tout ); <> } // '';
  my @failed = grep { !/# TODO/ } $tap =~ /^(not ok .*)$/mg;
  ok( defined $trc && $trc == 0 && $tap =~ /^1\.\.\d+/m && !@failed, "$t passes under valgrind" )
    or diag join "\n", @failed, substr( $tap, -2000 );
  my $all = join '', map { local ( @ARGV, $/ ) = ( $_ ); <> // '' } glob( "$tlog.*" );
  my ( $tn, undef, $tex ) = parse_log( $all );
  is( $tn->{invalid} + $tn->{definite} + $tn->{uninit} + $tn->{other}, 0,
    "$t: no invalid access, no definite leak or other memcheck error from our code" )
    or diag join "\n", @$tex[ 0 .. ( $#$tex < 4 ? $#$tex : 4 ) ];
}

no_leaks_ok();
done_testing;
