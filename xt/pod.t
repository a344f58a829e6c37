# Author test: the POD of the module and of the command parses without errors
# or warnings (Test::Pod; skipped without it).

use strict;
use warnings;
use Test::More;

eval { require Test::Pod; Test::Pod->VERSION( 1.22 ); 1 }
  or plan skip_all => 'Test::Pod 1.22 needed (Debian: libtest-pod-perl)';
Test::Pod->import;

all_pod_files_ok( all_pod_files( qw( lib bin ) ) );
