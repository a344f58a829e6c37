package SLInterop::Child;

# The library of every child SLInterop starts (`use SLInterop::Child;` after
# `use IPC::ShareLite`): value maker, bounded file waits, opening a share.
# $ORIG is true in a child running 0.17. The 0.17 quirk: an opener must not
# ask for more than the existing segment size, so open_share passes the
# creator's size to 0.17 and ours_size (if given, undef = default) to ours.

use strict;
use warnings;
use Time::HiRes qw(time sleep);
use Digest::MD5 qw(md5_hex);
use Exporter ();
our @ISA    = ('Exporter');
our @EXPORT = qw( $ORIG $WAIT_CAP mk wait_file put_file open_share time sleep md5_hex );

our $ORIG = defined $IPC::ShareLite::VERSION && $IPC::ShareLite::VERSION eq '0.17' ? 1 : 0;
our $WAIT_CAP = 20;    # seconds, every wait loop (the parent's SLInterop too)

# $len bytes, binary, every 4+length($seed) block different (misplaced chunks show)
sub mk {
  my ( $len, $seed ) = @_;
  my $blk = 4 + length $seed;
  my $s = join '', map { pack( 'N', $_ ) . $seed } 0 .. int( $len / $blk );
  return substr( $s, 0, $len );
}

sub wait_file {
  my ( $f, $cap ) = @_;
  my $end = time + ( $cap || $WAIT_CAP );
  until ( -e $f ) {
    die "timeout waiting for $f\n" if time > $end;
    sleep 0.002;
  }
  return 1;
}

sub put_file {
  my ( $f, $c ) = @_;
  open my $fh, '>', "$f.tmp.$$" or die "open $f: $!";
  print {$fh} defined $c ? $c : '';
  close $fh or die "close $f: $!";
  rename "$f.tmp.$$", $f or die "rename $f: $!";
  return 1;
}

sub open_share {
  my %a = @_;
  my @args = ( -key => $a{key}, -create => $a{create} ? 1 : 0, -destroy => $a{destroy} ? 1 : 0 );
  my $size = $a{size};
  $size = $a{ours_size} if !$ORIG && exists $a{ours_size};
  push @args, -size => $size if defined $size;
  return IPC::ShareLite->new( @args );
}

1;
