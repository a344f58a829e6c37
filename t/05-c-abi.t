# The C ABI header the XS glue compiles against (xs/sharelite.h) declares
# exactly the functions the Rust core exports (ffi/src/lib.rs), with the same
# constants, and the built XS module exports nothing but its boot function.
# Where cbindgen is installed, the header is what it makes of ffi/src/lib.rs
# (t/tools/gen-header --check: the types too); CI always checks that.
# The symbol tables are read with readelf -s (GNU binutils, old or new, and
# the elftoolchain readelf of FreeBSD all print them alike); what no readelf
# here can read, and the exports of a module linked without --exclude-libs
# (a linker that does not take it: macOS, Solaris), is skipped, saying why.
use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use Config;

my $root = root_dir();
my ( $lib ) = glob( "$root/target/*/release/libsharelite_ffi.a" );
plan skip_all => 'static library not built (run make)' unless $lib && -f $lib;

open my $fh, '<', "$root/xs/sharelite.h" or die "sharelite.h: $!";
my $header = do { local $/; <$fh> };
close $fh;
my %declared = map { $_ => 1 } $header =~ /\b(sl_[a-z_]+)\s*\([^)]*\)\s*;/g;
ok( scalar keys %declared, 'the header declares functions' );

# The symbol tables of $file as readelf -sW prints them: table name => rows,
# each [ Num Value Size Type Bind Vis Ndx Name ]; undef when readelf cannot
# read it (none here, or not an ELF file).
# readelf, not nm: nm may try (and fail) to read LTO objects through a plugin.
sub symbol_tables {
  my $file = shift;
  my @out = `readelf -sW '$file' 2>/dev/null`;
  return undef if $? != 0 || !grep { /^Symbol table '/ } @out;
  my ( %tables, $table );
  for ( @out ) {
    if ( /^Symbol table '([^']+)'/ ) { $table = $tables{$1} ||= []; next }
    my @f = split ' ';
    push @$table, \@f if $table && @f >= 8 && $f[0] =~ /^\d+:$/;
  }
  return \%tables;
}

# readelf -s columns: Num Value Size Type Bind Vis Ndx Name
SKIP: {
  my $tables = symbol_tables( $lib );
  skip 'no readelf here that reads the static library (readelf -s)', 1 unless $tables;
  my %exported = map { $_->[7] => 1 }
    grep { $_->[4] eq 'GLOBAL' && $_->[6] ne 'UND' && $_->[7] =~ /^sl_/ } map { @$_ } values %$tables;
  is_deeply( [ sort keys %declared ], [ sort keys %exported ], 'header and Rust exports list the same sl_ functions' );
}

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

# The module's dynamic symbol table (.dynsym, what it exports), when it was
# linked with --exclude-libs (Makefile.PL gives it where the linker takes it).
my ( $so ) = glob( "$root/blib/arch/auto/IPC/ShareLite/ShareLite.$Config{dlext}" );
SKIP: {
  skip 'XS module not built', 1 unless $so && -f $so;
  my $makefile = do { local ( @ARGV, $/ ) = ( "$root/Makefile" ); <> } // '';
  skip 'the module was linked without --exclude-libs (this linker does not take it): it exports the Rust core too', 1
    unless $makefile =~ /^OTHERLDFLAGS\s*=.*--exclude-libs/m;
  my $tables = symbol_tables( $so );
  skip 'no readelf here that reads the XS module (readelf -s)', 1 unless $tables;
  skip "readelf shows no dynamic symbol table (.dynsym) of the XS module", 1 unless $tables->{'.dynsym'};
  my @names = map { $_->[7] } grep { $_->[3] eq 'FUNC' && $_->[4] eq 'GLOBAL' && $_->[6] ne 'UND' } @{ $tables->{'.dynsym'} };
  is_deeply( \@names, ['boot_IPC__ShareLite'], 'the XS module exports only its boot function' );
}

SKIP: {
  skip 'cbindgen not installed (cargo install cbindgen): the header is checked by name and count only', 1
    unless `cbindgen --version 2>/dev/null` =~ /cbindgen/;
  my $out = `'$root/t/tools/gen-header' --check 2>&1`;
  is( $?, 0, 'xs/sharelite.h is what cbindgen makes of ffi/src/lib.rs, types included' ) or diag $out;
}

done_testing;
