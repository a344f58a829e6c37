package IPC::ShareLite::KeyT;

# The width of a key_t, written once: IPC::ShareLite reads -key with it,
# IPC::ShareLite::Inspect (which must load where 0.17 is the IPC::ShareLite
# in use) converts key_t values with it. Pure Perl, nothing else loaded.

use strict;
use warnings;

use Exporter qw(import);

our $VERSION   = '0.18';
our @EXPORT_OK = qw(KEY_BITS);

use constant KEY_BITS => $^O =~ /\A(?:freebsd|netbsd|openbsd)\z/ ? 8 * length( pack 'l!', 0 ) : 32;

1;

__END__

=head1 NAME

IPC::ShareLite::KeyT - the width of a SysV key_t

=head1 SYNOPSIS

    use IPC::ShareLite::KeyT qw(KEY_BITS);

=head1 DESCRIPTION

=head2 KEY_BITS

The width of a C<key_t> in bits: a C<long> on FreeBSD, NetBSD and OpenBSD
(64 bits on their 64-bit systems), 32 bits on the other systems the core
builds for (Linux, macOS, Solaris and illumos). L<IPC::ShareLite> reads C<-key> with it;
L<IPC::ShareLite::Inspect> exports it, with the conversions of key_t values
that use it.

=head1 SEE ALSO

L<IPC::ShareLite>, L<IPC::ShareLite::Inspect>.

=cut
