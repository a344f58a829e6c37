# Covers: the synopsis of README.md and the one of the module's POD run as
# written (key 1971 replaced by a key of this test) under perl -w: exit 0,
# not a word on stderr, the counter at 1; each says how to remove the share
# it leaves (-destroy => 'no'), `sharelite rm 1971`, and that command, run
# with the test's key, removes it.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(:DEFAULT exists_share);
use Test::More;
use File::Temp ();
use POSIX ();
use IPC::ShareLite;

plan skip_all => 'the synopses are this distribution\'s' if impl_under_test() eq 'orig';
watchdog( 60 );
chdir root_dir() or die "chdir: $!";

my $TMP = File::Temp::tempdir( 'slsyn.XXXXXX', TMPDIR => 1, CLEANUP => 1 );

sub slurp { my $f = shift; open my $fh, '<', $f or die "$f: $!"; local $/; <$fh> // '' }

# Run perl (with this build) on @args: (exit code, stderr).
sub run_perl {
  my @args = @_;
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    open STDOUT, '>', '/dev/null'  or POSIX::_exit( 97 );
    open STDERR, '>', "$TMP/err" or POSIX::_exit( 97 );
    delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
    exec( $^X, '-Iblib/lib', '-Iblib/arch', @args ) or POSIX::_exit( 98 );
  }
  my $rc = wait_child( $pid );
  return ( $rc, slurp( "$TMP/err" ) );
}

# The first indented block from the line "    use IPC::ShareLite" on, and
# the text after it up to the next heading.
sub synopsis {
  my $text = shift;
  my ( $code, $after ) = $text =~ /^( {4}use IPC::ShareLite\b.*?\n)(?=\S)(.*?)^(?:=head|#)/ms or return;
  $code =~ s/^ {4}//mg;
  return ( $code, $after );
}

my $pod = slurp( 'lib/IPC/ShareLite.pm' );
( my $pod_synopsis ) = $pod =~ /^=head1 SYNOPSIS\n\n(.*?)^=head1 /ms;
for my $c ( [ 'README.md', slurp( 'README.md' ) ], [ 'the POD', "$pod_synopsis=head1\n" ] ) {
  my ( $name, $text ) = @$c;
  my ( $code, $after ) = synopsis( $text );
  ok( defined $code, "$name: a synopsis" ) or next;
  like( $code, qr/-destroy\s*=>\s*'no'/, "$name: it keeps the share (-destroy => 'no')" );
  like( "$code$after", qr/sharelite rm 1971/, "$name: and says how to remove it: sharelite rm 1971" );

  my $k = new_key( 1 );
  ( my $run = $code ) =~ s/\b1971\b/$k/g;
  my ( $rc, $err ) = run_perl( '-w', '-e', $run );
  is( $rc, 0, "$name: the synopsis runs under perl -w" );
  is( $err, "", "$name: ... without a warning" );
  ok( exists_share( $k ), "$name: ... and leaves its share" );
  chain_shmids( $k );    # ours, should the next steps fail
  my $s = IPC::ShareLite->new( -key => $k );
  is( $s && $s->fetch, 1, "$name: ... holding the counter, 1" );
  undef $s;
  ( $rc, $err ) = run_perl( 'bin/sharelite', 'rm', $k );
  is( $rc, 0, "$name: sharelite rm with that key" ) or diag $err;
  ok( !exists_share( $k ), "$name: ... removes it" );
}

no_leaks_ok();
done_testing;
