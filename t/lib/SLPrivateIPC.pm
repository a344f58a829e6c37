package SLPrivateIPC;

# Runs the calling test file again inside a private IPC namespace (as root:
# `unshare --ipc`; otherwise a user namespace where the test is root, where
# the kernel allows it), or skips the whole file when none can be had. Use it
# first thing: `use SLPrivateIPC;`. Inside, the namespace holds only what the
# test makes, so limits can be lowered and every object listed.

use strict;
use warnings;

sub import {
  return if $ENV{SHARELITE_PRIVATE_IPC};
  my @inc = map { "-I$_" } grep { !ref } @INC;
  for my $how ( ( $> == 0 ? ( ['--ipc'] ) : () ), [ '--user', '--map-root-user', '--ipc' ] ) {
    local $ENV{SHARELITE_PRIVATE_IPC} = 1;
    next unless system( 'unshare', @$how, '--', $^X, '-e', 'exit 0' ) == 0;
    my $rc = system( 'unshare', @$how, '--', $^X, @inc, $0, @ARGV );
    exit( $rc == -1 ? 1 : $rc >> 8 );
  }
  print "1..0 # SKIP no private IPC namespace (unshare --ipc) here\n";
  exit 0;
}

# Ids of every segment and semaphore set in the namespace, sorted:
# { shm => [...], sem => [...] }, from the listing of SysV objects
# (IPC::ShareLite::Inspect, loaded by SLTest).
sub objects {
  return {
    shm => [ sort { $a <=> $b } map { $_->{id} } SLTest::sysv_segments() ],
    sem => [ sort { $a <=> $b } map { $_->{id} } SLTest::sysv_semaphores() ],
  };
}

# The kernel.NAME setting of the namespace (/proc/sys/kernel/NAME); with a
# VALUE, sets it first and returns the old one, or undef when it cannot be
# set. Dies when it cannot be read.
sub sysctl {
  my ( $name, $value ) = @_;
  my $f = "/proc/sys/kernel/$name";
  open my $fh, '<', $f or die "$f: $!";
  chomp( my $old = <$fh> );
  if ( defined $value ) {
    open my $w, '>', $f or return undef;
    print {$w} "$value\n" or return undef;
    close $w or return undef;
  }
  return $old;
}

1;
