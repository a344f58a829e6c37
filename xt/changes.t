# Author test: Changes follows the CPAN::Changes spec (every release has a
# version and a date or an explicit "Not Released"), and has an entry with
# content for the module's version (Test::CPAN::Changes; skipped without it).

use strict;
use warnings;
use Test::More;

eval { require Test::CPAN::Changes; Test::CPAN::Changes->VERSION( 0.4 ); 1 }
  or plan skip_all => 'Test::CPAN::Changes 0.4 needed (Debian: libcpan-changes-perl)';
Test::CPAN::Changes->import;

require ExtUtils::MakeMaker;
my $version = MM->parse_version( 'lib/IPC/ShareLite.pm' );

plan tests => 6;
changes_file_ok( 'Changes', { version => $version } );
