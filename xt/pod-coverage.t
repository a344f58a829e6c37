# Author test: every public function and method of IPC::ShareLite, the XS ones
# and the exportable IPC_STATE included, has POD (Test::Pod::Coverage; skipped
# without it). Run with -b: the module is loaded from blib.

use strict;
use warnings;
use Test::More;

eval { require Test::Pod::Coverage; Test::Pod::Coverage->VERSION( 1.08 ); 1 }
  or plan skip_all => 'Test::Pod::Coverage 1.08 needed (Debian: libtest-pod-coverage-perl)';
Test::Pod::Coverage->import;

plan tests => 1;
pod_coverage_ok( 'IPC::ShareLite', 'IPC::ShareLite: every public name documented' );
