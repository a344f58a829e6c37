# store() of a reference stores its address ("HASH(0x...)"), as 0.17 does,
# but says so under `use warnings` (category 'misc'), naming the caller's
# line; no warning under `no warnings`, and none for an object that
# overloads stringification (storing its string is what it is for).

use lib 't/lib';
use SLTest;
use strict;
use warnings;
use Test::More;
use IPC::ShareLite;

{
  package Stringy;
  use overload '""' => sub { 'stringified' }, fallback => 1;
  sub new { bless {}, shift }
}

my $s = IPC::ShareLite->new( -key => 0, -create => 1, -destroy => 1 ) or die "new: $!";

my @warned;
local $SIG{__WARN__} = sub { push @warned, $_[0] };

my $ref = { a => 1 };
$s->store( $ref ); my $line = __LINE__;
is( scalar @warned, 1, 'storing a hash reference warns once' );
like( $warned[0] // '', qr/storing a reference stores only its address \(HASH\(0x[0-9a-f]+\)\)/, 'the warning says what is stored' );
like( $warned[0] // '', qr/at \Q$0\E line $line\.$/, "the warning names the caller's line" );
is( $s->fetch, "$ref", 'the address is stored, as 0.17 does' );

@warned = ();
{
  no warnings 'misc';
  $s->store( [ 1, 2 ] );
}
is( scalar @warned, 0, "no warning under no warnings 'misc'" );

@warned = ();
$s->store( Stringy->new );
is( scalar @warned, 0, 'no warning for an object with overloaded stringification' );
is( $s->fetch, 'stringified', 'its string is stored' );

@warned = ();
$s->store( 'plain' );
$s->store( 42 );
is( scalar @warned, 0, 'no warning for plain values' );

undef $s;
no_leaks_ok();
done_testing;
