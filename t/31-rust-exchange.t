# A Rust program using the core crate (rust-core/examples/exchange.rs) and a
# Perl process share one key: each sees the other's value. Runs against our
# module and, when unpacked, the original 0.17.
use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use File::Temp ();

my $root = root_dir();
my $cargo = $ENV{CARGO} || 'cargo';
my $build = system( "cd '$root' && $cargo build --quiet --release --locked --example exchange 2>&1" );
plan skip_all => 'cannot build the Rust example' if $build != 0;
my $exchange = "$root/target/release/examples/exchange";
ok( -x $exchange, 'example built' );

my @impls = ( 'ours', have_ref() ? 'orig' : () );
for my $impl ( @impls ) {
  my $key = new_key();
  my ( undef, $out ) = File::Temp::tempfile( "exchange.$impl.XXXXXX", TMPDIR => 1, UNLINK => 1 );
  my $pid = fork;
  die "fork: $!" unless defined $pid;
  if ( !$pid ) {
    open STDOUT, '>', $out or exit 97;
    exec $exchange, $key, "hello from rust, for $impl", 20 or exit 98;
  }

  my ( $rc, $seen ) = run_impl( $impl, <<'PERL', $key );
my $key = shift;
my $share;
for ( 1 .. 400 ) {
  $share = eval { IPC::ShareLite->new( -key => $key ) } and last;
  select undef, undef, undef, 0.05;
}
die "no share\n" unless $share;
my $v = '';
for ( 1 .. 400 ) { $v = $share->fetch; last if length $v; select undef, undef, undef, 0.05 }
print $v;
$share->store( 'hello from perl' );
PERL
  is( $rc, 0, "$impl: perl side ran" );
  is( $seen, "hello from rust, for $impl", "$impl: perl fetched what Rust stored" );
  is( wait_child( $pid ), 0, "$impl: Rust side saw a new value" );
  open my $fh, '<', $out or die "$out: $!";
  my $got = do { local $/; <$fh> };
  close $fh;
  unlink $out;
  is( $got, "hello from perl\n", "$impl: Rust fetched what perl stored" );
  purge_key( $key );
}

no_leaks_ok();
done_testing;
