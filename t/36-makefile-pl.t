# Covers: what perl Makefile.PL says without a usable Rust toolchain, run in
# a temporary copy with fake cargo and rustc scripts (and nothing else) on
# PATH: no cargo, a cargo too old (Debian 12's reports 1.65), CARGO= set but
# no rustc, a rustc too old, RUSTC= naming nothing. Each time it names what
# it found and what it needs (1.75), says where a newer one comes from
# (rustup, Debian 12's cargo-web and rustc-web), exits 0 and writes no
# Makefile (the CPAN testers' NA). With cargo and rustc 1.75 it goes on and
# writes one.

use strict;
use warnings;
use lib 't/lib';
use SLTest qw(root_dir);
use Test::More;
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp ();
use POSIX ();

my $ROOT = root_dir();
my $TMP  = File::Temp::tempdir( 'slmkpl.XXXXXX', TMPDIR => 1, CLEANUP => 1 );
my $N    = 0;

# A fake tool in a directory of its own: prints $text for --version and -vV.
sub tool {
  my ( $name, $text ) = @_;
  my $dir = "$TMP/bin" . $N++;
  mkdir $dir or die "$dir: $!";
  open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
  # echo is built into sh: nothing else need be on PATH.
  print {$fh} "#!/bin/sh\n", map { "echo '$_'\n" } split /\n/, $text;
  close $fh or die;
  chmod 0755, "$dir/$name" or die;
  return $dir;
}

# perl Makefile.PL in a fresh copy, with PATH and the environment given:
# (exit code, stderr, whether a Makefile was written).
sub makefile_pl {
  my %env  = @_;
  my $copy = "$TMP/copy" . $N++;
  make_path( "$copy/lib/IPC" );
  copy( "$ROOT/Makefile.PL", "$copy/Makefile.PL" ) or die "copy: $!";
  copy( "$ROOT/lib/IPC/ShareLite.pm", "$copy/lib/IPC/ShareLite.pm" ) or die "copy: $!";
  my $pid = fork // die "fork: $!";
  if ( !$pid ) {
    chdir $copy or POSIX::_exit( 97 );
    open STDOUT, '>', "$copy/.out" or POSIX::_exit( 97 );
    open STDERR, '>', "$copy/.err" or POSIX::_exit( 97 );
    delete @ENV{qw(CARGO RUSTC PERL_MM_OPT)};
    @ENV{ keys %env } = values %env;
    exec( $^X, 'Makefile.PL' ) or POSIX::_exit( 98 );
  }
  waitpid( $pid, 0 );
  my $rc = $? & 127 ? 128 + ( $? & 127 ) : $? >> 8;
  my $err = do { local ( @ARGV, $/ ) = ( "$copy/.err" ); <> } // '';
  return ( $rc, $err, -e "$copy/Makefile" ? 1 : 0 );
}

my $cargo165 = tool( 'cargo', 'cargo 1.65.0' );
my $cargo180 = tool( 'cargo', 'cargo 1.80.1 (376290515 2024-07-16)' );
my $rustc163 = tool( 'rustc', "rustc 1.63.0\nhost: x86_64-unknown-linux-gnu" );
my $rustc180 = tool( 'rustc', "rustc 1.80.1 (3f5fd8dd4 2024-08-06)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu" );
my $empty    = "$TMP/empty";
mkdir $empty or die;

sub not_applicable {
  my ( $name, $found, %env ) = @_;
  my ( $rc, $err, $made ) = makefile_pl( %env );
  is( $rc, 0, "$name: exit 0" );
  ok( !$made, "$name: no Makefile" );
  like( $err, qr/\AIPC::ShareLite needs cargo and rustc 1\.75 or later to build, and found \Q$found\E\.\n/,
    "$name: names what it found and the version needed" );
  like( $err, qr{rustup \(https://rustup\.rs\)}, "$name: rustup" );
  like( $err, qr/Debian 12 packages Rust 1\.85 as cargo-web and rustc-web/, "$name: Debian 12's packages" );
  unlike( $err, qr/Cannot tell/, "$name: no die" );
}

not_applicable( 'no cargo', 'no cargo (none on PATH)', PATH => $empty );
not_applicable( 'CARGO naming nothing', "no cargo (CARGO=$empty/cargo does not run)", PATH => $empty, CARGO => "$empty/cargo" );
not_applicable( 'cargo 1.65', "cargo 1.65.0 ('cargo' on PATH)", PATH => "$cargo165:$rustc180" );
not_applicable( 'CARGO=cargo 1.65', "cargo 1.65.0 (CARGO=$cargo165/cargo)", PATH => $rustc180, CARGO => "$cargo165/cargo" );
not_applicable( 'CARGO= set, no rustc', 'cargo 1.80.1 but no rustc (none on PATH)', PATH => $empty, CARGO => "$cargo180/cargo" );
not_applicable( 'rustc 1.63', "rustc 1.63.0 ('rustc' on PATH)", PATH => "$cargo180:$rustc163" );
not_applicable( 'RUSTC naming nothing', "cargo 1.80.1 but no rustc (RUSTC=$empty/rustc does not run)",
  PATH => "$cargo180:$rustc180", RUSTC => "$empty/rustc" );

# cargo and rustc recent enough: it goes on (the fake rustc makes no
# library, so it falls back to its list of system libraries) and writes a
# Makefile.
{
  my ( $rc, $err, $made ) = makefile_pl( PATH => "$cargo180:$rustc180" );
  is( $rc, 0, 'cargo and rustc 1.80: exit 0' ) or diag $err;
  ok( $made, '... and a Makefile' );
}

done_testing();
