# Covers: the module loads (ours or, with SHARELITE_TEST_IMPL=orig, the
# reference 0.17), $VERSION, that nothing is exported by default, the export
# tags :lock, :flock and :all, importing each constant alone, and that the
# constants equal the Fcntl (LOCK_*) and IPC::SysV (IPC_*) values.

use strict;
use warnings;
use lib 't/lib';
use SLTest;
use Test::More;
use Fcntl ();
use IPC::SysV ();

BEGIN { use_ok( 'IPC::ShareLite' ) or BAIL_OUT( 'IPC::ShareLite does not load' ) }

my $impl = impl_under_test();
diag( "IPC::ShareLite $IPC::ShareLite::VERSION from $INC{'IPC/ShareLite.pm'} ($impl)" );

# --- version -----------------------------------------------------------------
ok( defined $IPC::ShareLite::VERSION, '$VERSION is defined' );
is( $IPC::ShareLite::VERSION, ( $impl eq 'orig' ? '0.17' : '0.18' ), "\$VERSION of the $impl implementation" );
ok( eval { IPC::ShareLite->VERSION( '0.17' ); 1 }, 'VERSION(0.17) is satisfied' ) or diag $@;
ok( !eval { IPC::ShareLite->VERSION( '99' ); 1 }, 'VERSION(99) is not' );

# --- methods -----------------------------------------------------------------
can_ok( 'IPC::ShareLite',
  qw( new store fetch lock unlock shlock shunlock version key create exclusive
   flags mode size num_segments destroy ) );
SKIP: {
  skip 'remove() is new in 0.18', 1 if $impl eq 'orig';
  can_ok( 'IPC::ShareLite', 'remove' );
}

# --- exports -----------------------------------------------------------------
my @lock = qw( LOCK_EX LOCK_SH LOCK_UN LOCK_NB );
my @ipc  = qw( IPC_CREAT IPC_EXCL IPC_RMID IPC_PRIVATE );

my %want = (
  LOCK_EX     => Fcntl::LOCK_EX(),
  LOCK_SH     => Fcntl::LOCK_SH(),
  LOCK_UN     => Fcntl::LOCK_UN(),
  LOCK_NB     => Fcntl::LOCK_NB(),
  IPC_CREAT   => IPC::SysV::IPC_CREAT(),
  IPC_EXCL    => IPC::SysV::IPC_EXCL(),
  IPC_RMID    => IPC::SysV::IPC_RMID(),
  IPC_PRIVATE => IPC::SysV::IPC_PRIVATE(),
);

my $pkgno = 0;

# Import @args into a fresh package; returns the package name (undef on error).
sub import_into {
  my @args = @_;
  my $pkg  = 'ImportTest' . ++$pkgno;
  my $list = join ' ', map { "'$_'" } @args;
  my $ok   = eval "package $pkg; use IPC::ShareLite ($list); 1";
  diag( "import of (@args) failed: $@" ) unless $ok;
  return $ok ? $pkg : undef;
}

sub has_sub {
  my ( $pkg, $name ) = @_;
  no strict 'refs';
  # exists, not defined: 0.17 declares its constants and AUTOLOADs them
  return exists &{"${pkg}::$name"};
}

{
  my $pkg = 'ImportTest' . ++$pkgno;
  ok( eval "package $pkg; use IPC::ShareLite; 1", 'plain use' ) or diag $@;
  ok( !has_sub( $pkg, $_ ), "$_ not exported by default" ) for @lock, @ipc;
}

for my $tag ( ':lock', ':flock' ) {
  my $pkg = import_into( $tag );
  ok( $pkg, "import $tag" );
  next unless $pkg;
  ok( has_sub( $pkg, $_ ), "$tag exports $_" ) for @lock;
  ok( !has_sub( $pkg, $_ ), "$tag does not export $_" ) for @ipc;
}

{
  my $pkg = import_into( ':all' );
  ok( $pkg, 'import :all' );
  if ( $pkg ) {
    ok( has_sub( $pkg, $_ ), ":all exports $_" ) for @lock, @ipc;
    no strict 'refs';
    for my $name ( @lock, @ipc ) {
      is( &{"${pkg}::$name"}(), $want{$name}, "$name (via :all) equals the system value" );
    }
  }
}

for my $name ( @lock, @ipc ) {
  my $pkg = import_into( $name );
  ok( $pkg, "import $name alone" );
  next unless $pkg;
  ok( has_sub( $pkg, $name ), "$name imported alone" );
  my @others = grep { $_ ne $name } @lock, @ipc;
  ok( !( grep { has_sub( $pkg, $_ ) } @others ), "importing $name brings nothing else" );
  no strict 'refs';
  is( &{"${pkg}::$name"}(), $want{$name}, "$name equals the system value" );
  is( &{"IPC::ShareLite::$name"}(), $want{$name}, "IPC::ShareLite::$name() equals the system value" );
}

ok( !eval "package ImportTestBad; use IPC::ShareLite qw(NO_SUCH_THING); 1", 'importing an unknown name fails' );

no_leaks_ok();
done_testing;
