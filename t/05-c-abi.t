# The C ABI header the XS glue compiles against (xs/sharelite.h) declares
# exactly the functions the Rust core exports (ffi/src/lib.rs), with the same
# constants, and the built XS module exports nothing but its boot function.
use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use Config;

my $root = root_dir();
my ( $lib ) = glob( "$root/target/*/release/libsharelite_ffi.a" );
plan skip_all => 'static library not built (run make)' unless $lib && -f $lib;
# readelf, not nm: nm may try (and fail) to read LTO objects through a plugin.
plan skip_all => 'readelf not available' unless `readelf --version 2>/dev/null`;

open my $fh, '<', "$root/xs/sharelite.h" or die "sharelite.h: $!";
my $header = do { local $/; <$fh> };
close $fh;
my %declared = map { $_ => 1 } $header =~ /\b(sl_[a-z_]+)\s*\([^)]*\)\s*;/g;

# readelf -s columns: Num Value Size Type Bind Vis Ndx Name
my %exported = map { $_->[7] => 1 }
  grep { @$_ >= 8 && $_->[4] eq 'GLOBAL' && $_->[6] ne 'UND' && $_->[7] =~ /^sl_/ }
  map { [ split ' ' ] } `readelf -sW '$lib' 2>/dev/null`;

ok( scalar keys %declared, 'the header declares functions' );
is_deeply( [ sort keys %declared ], [ sort keys %exported ], 'header and Rust exports list the same sl_ functions' );

# Each prototype's argument count matches the Rust signature.
open my $rs, '<', "$root/ffi/src/lib.rs" or die "lib.rs: $!";
my $ffi = do { local $/; <$rs> };
close $rs;
for my $name ( sort keys %declared ) {
  my ( $c_args )  = $header =~ /\b\Q$name\E\s*\(([^)]*)\)\s*;/;
  my ( $rs_args ) = $ffi =~ /extern "C" fn \Q$name\E\s*\(([^)]*)\)/s;
  ok( defined $rs_args, "$name is defined in ffi/src/lib.rs" ) or next;
  my $count = sub { my $a = shift; $a =~ s/^\s+|\s+$//g; return 0 if $a eq '' || $a eq 'void'; scalar split /,/, $a };
  is( $count->( $c_args ), $count->( $rs_args ), "$name takes the same number of arguments on both sides" );
}

# The header's SL_ constants (status codes, fetch plans) have the values the
# Rust side gives them.
my %c_const  = $header =~ /^#define\s+(SL_[A-Z_]+)\s+\(?(-?\d+)\)?/mg;
my %rs_const = $ffi =~ /^pub const (SL_[A-Z_]+): c_int = (-?\d+);/mg;
ok( scalar keys %c_const, 'the header defines constants' );
is_deeply( \%c_const, \%rs_const, 'header and Rust define the same SL_ constants, with the same values' );

my ( $so ) = glob( "$root/blib/arch/auto/IPC/ShareLite/ShareLite.$Config{dlext}" );
SKIP: {
  skip 'XS module not built', 1 unless $so && -f $so;
  my @names = map { $_->[7] }
    grep { @$_ >= 8 && $_->[3] eq 'FUNC' && $_->[4] eq 'GLOBAL' && $_->[6] ne 'UND' }
    map { [ split ' ' ] } `readelf --dyn-syms -W '$so' 2>/dev/null`;
  is_deeply( \@names, ['boot_IPC__ShareLite'], 'the XS module exports only its boot function' );
}

done_testing;
