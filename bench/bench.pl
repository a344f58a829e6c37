#!/usr/bin/perl
# Benchmark: our IPC::ShareLite (blib) against the reference 0.17 (.ref).
#
# The parent runs one fresh perl per (implementation, case, round), with only
# that implementation on @INC, and reports the median ops/s of each case.
# The children are this same script started with --child.
# See bench/README.md.

use strict;
use warnings;
use Config;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use Getopt::Long qw(GetOptionsFromArray);
use IPC::SysV qw(IPC_RMID);
use List::Util qw(max min);
use POSIX ();
use Time::HiRes qw(time);

my $ROOT    = abs_path( File::Spec->catdir( dirname( abs_path( __FILE__ ) ), '..' ) );
my $SCRIPT  = abs_path( __FILE__ );
my $OUT_DIR = "$ROOT/bench/out";

# The distribution's pure-Perl SysV listing, loaded from lib/ alone, so that
# a child with only the reference 0.17 on @INC has it too.
{
  local @INC = ( "$ROOT/lib", @INC );
  require IPC::ShareLite::Inspect;
}

# Value sizes in bytes (segment size stays at the default, 65536).
my @FULL_SIZES  = ( 16, map { $_ * 1024 } 1, 16, 32, 64, 128, 256, 512, 4096 );
my @QUICK_SIZES = ( 16, map { $_ * 1024 } 1, 64, 512, 4096 );

# Seconds each timed run aims for, and the least a calibration run must take.
my %TIMING = (
  full  => { target => 0.4,  calibrate => 0.05 },
  quick => { target => 0.12, calibrate => 0.02 },
);

# Keys: the parent hands every run a block of 256 keys at which nothing
# existed (0.17 chains extra segments on the keys after the share's own),
# drawn at random from 0x60000000 .. 0x6FFFFFFF (clear of the test suite's
# 0x10000000 .. 0x1FFFFFFF), and afterwards removes what is left at those
# keys and in the chains hanging from them: never anything by pid alone.
my $KEY_BASE   = 0x60000000;
my $KEY_SPAN   = 256;
my $KEY_BLOCKS = 0x10000000 / $KEY_SPAN;

# The floor (bench/floor.c, built here with cc): 0.17's protocol in C, and
# the same cases through our Rust core's C ABI. A row whose ours/floor is
# below this gets a breakdown of where its time goes.
my $FLOOR_SOURCE = "$ROOT/bench/floor.c";
my $FLOOR_GOAL   = 0.85;

# XS method calls one operation of a case makes (lock + unlock for lock-*).
my %XS_CALLS = ( pair => 2, 'lock-ex' => 2, 'lock-sh' => 2 );
# Processes running the case at once (each pays its own XS calls).
my %PARALLEL = ( 'two-readers' => 2 );
# Cases of an unchanged value: their floor is the check without the lock
# (the head's stamp, GETVAL of the writer semaphore, the stamp again), not
# 0.17's locked fetch.
my %UNCHANGED = map { $_ => 1 } qw(fetch-unchanged two-readers);

exit( @ARGV && $ARGV[0] eq '--child' ? child_main( @ARGV[ 1 .. $#ARGV ] ) : run_parent( @ARGV ) );

# ---------------------------------------------------------------------------
# Shared helpers

sub size_label {
  my $bytes = shift;
  return "${bytes}B" if $bytes < 1024;
  return ( $bytes / 1048576 ) . 'M' if $bytes % 1048576 == 0;
  return ( $bytes / 1024 ) . 'K';
}

sub case_label {
  my ( $kind, $size ) = @_;
  return defined $size ? "$kind-" . size_label( $size ) : $kind;
}

# A block of $KEY_SPAN keys with no segment and no semaphore set at any of
# them (a taken key is skipped, never touched); returns its first key.
sub reserve_key_block {
  for ( 1 .. 1000 ) {
    my $first = $KEY_BASE + int( rand $KEY_BLOCKS ) * $KEY_SPAN;
    return $first unless grep { IPC::ShareLite::Inspect::key_in_use( $first + $_ ) } 0 .. $KEY_SPAN - 1;
  }
  die "no free block of $KEY_SPAN keys in 0x60000000 .. 0x6fffffff\n";
}

# The core's look at a key from outside (IPC::ShareLite::_look, our module
# from blib), or undef where it is not built (with --ours-lib): then only
# what is at the block's keys is found, not the private chained segments of
# a share of ours.
my $LOOK;
sub core_look {
  $LOOK //= eval {
    local @INC = ( "$ROOT/blib/arch", "$ROOT/blib/lib", @INC );
    require IPC::ShareLite;
    IPC::ShareLite->can( '_look' );
  } || 0;
  return $LOOK || undef;
}

# Removes what a run left in the block reserve_key_block gave it: the
# segments and semaphore sets at its keys, and the segments of every sound
# chain hanging from a head there (ours chains private segments), as the core
# sees it. Returns how many objects were removed.
sub release_key_block {
  my $first = shift;
  my ( %shm_ids, %sem_ids );
  my $look = core_look();
  for my $key ( $first .. $first + $KEY_SPAN - 1 ) {
    my $shm = shmget( $key, 0, 0 );
    if ( defined $shm ) {
      my $l = $look && eval { $look->( $key ) };
      $shm_ids{$_} = 1 for $l && $l->{found} eq 'share' && $l->{chain} eq 'ok' ? @{ $l->{shmids} } : $shm;
    }
    my $sem = semget( $key, 0, 0 );
    $sem_ids{$sem} = 1 if defined $sem;
  }
  my $removed = 0;
  $removed++ for grep { shmctl( $_, IPC_RMID, 0 ) } keys %shm_ids;
  $removed++ for grep { semctl( $_, 0, IPC_RMID, 0 ) } keys %sem_ids;
  return $removed;
}

# Ids of the segments this very process made: made by its pid and not
# among @_ (what that list held when it started: an earlier process of the
# same pid may have left segments).
sub segments_made_here {
  my %before = map { $_ => 1 } @_;
  return grep { !$before{$_} }
   map { $_->{id} } grep { ( $_->{cpid} // -1 ) == $$ } eval { IPC::ShareLite::Inspect::list_segments() };
}

sub median {
  my @sorted = sort { $a <=> $b } @_;
  return undef unless @sorted;
  my $mid = int( @sorted / 2 );
  return @sorted % 2 ? $sorted[$mid] : ( $sorted[ $mid - 1 ] + $sorted[$mid] ) / 2;
}

# ---------------------------------------------------------------------------
# Parent: options, schedule, report

sub usage {
  return <<"END";
usage: perl bench/bench.pl [--rounds N] [--quick] [--only REGEX] [--ours-lib DIR] [--no-floor] [--no-profile]
  --rounds N      rounds per case, each running both implementations (default 3)
  --quick         fewer sizes and shorter runs (smoke test)
  --only REGEX    only cases whose label matches, e.g. 'store|fetch-16B', '^lock'
  --ours-lib DIR  load 'ours' from DIR instead of blib (e.g. the 0.17 lib, to
                  develop the benchmark; its implementation check is then off)
  --no-floor      do not build and run the C floor (bench/floor.c)
  --no-profile    no perf profile of the rows below the floor goal
Writes bench/out/results.csv, and bench/out/chart.png when gnuplot is on PATH.
END
}

sub parse_parent_options {
  my @args = @_;
  my %opt  = ( rounds => 3, quick => 0, only => undef, ours_lib => undef, floor => 1, profile => 1 );
  GetOptionsFromArray(
    \@args,
    'rounds=i'   => \$opt{rounds},
    'quick'      => \$opt{quick},
    'only=s'     => \$opt{only},
    'ours-lib=s' => \$opt{ours_lib},
    'floor!'     => \$opt{floor},
    'profile!'   => \$opt{profile},
    'help|h'     => sub { print usage(); exit 0 },
  ) or die usage();
  die "unexpected arguments: @args\n" . usage() if @args;
  die "--rounds must be at least 1\n" if $opt{rounds} < 1;
  if ( defined $opt{only} ) {
    eval { qr/$opt{only}/ } or die "--only: bad regex '$opt{only}': $@";
  }
  return \%opt;
}

sub reference_lib {
  my ( $pm ) = glob( "$ROOT/.ref/0.17/usr/lib/*/perl5/*/IPC/ShareLite.pm" );
  die "reference 0.17 not found under $ROOT/.ref/0.17 (run t/tools/fetch-ref)\n"
   unless $pm && -f $pm;
  return dirname( dirname( $pm ) );
}

sub resolve_dir {
  my $dir = shift;
  for my $candidate ( $dir, File::Spec->rel2abs( $dir, $ROOT ) ) {
    return abs_path( $candidate ) if -d $candidate;
  }
  die "--ours-lib: no directory '$dir'\n";
}

# How each implementation is started and checked: -I flags, the directory its
# IPC/ShareLite.pm must come from, and the version check.
sub implementations {
  my $opt = shift;
  my $ref = reference_lib();
  my %impl = ( orig => { inc => [$ref], from => $ref, version_check => 'eq' } );
  if ( defined $opt->{ours_lib} ) {
    my $dir = resolve_dir( $opt->{ours_lib} );
    $impl{ours} = { inc => [$dir], from => $dir, version_check => 'any' };
  }
  else {
    my $so = "$ROOT/blib/arch/auto/IPC/ShareLite/ShareLite.so";
    die "$so not built yet; build the module or use --ours-lib DIR\n" unless -f $so;
    $impl{ours} = {
      inc           => [ "$ROOT/blib/arch", "$ROOT/blib/lib" ],
      from          => "$ROOT/blib/lib",
      version_check => 'ne',
    };
  }
  %impl = ( %impl, build_floor( $opt ) ) if $opt->{floor};
  return \%impl;
}

# The static library with our Rust core's C ABI that blib's module was
# linked with, and the system libraries it needs: from the Makefile that
# built it (MYEXTLIB, LDLOADLIBS).
sub core_link {
  my %var;
  if ( open my $fh, '<', "$ROOT/Makefile" ) {
    while ( <$fh> ) {
      $var{$1} = $2 if /^(MYEXTLIB|LDLOADLIBS)\s*=\s*(.*?)\s*$/;
    }
  }
  my $lib = $var{MYEXTLIB} // '';
  $lib = "$ROOT/$lib" if length $lib && $lib !~ m{^/};
  return unless length $lib && -f $lib;
  return ( $lib, $var{LDLOADLIBS} // '' );
}

# Compiles bench/floor.c into bench/out: 'floor' (0.17's protocol in C) and,
# when ours is blib, 'core' (our Rust core through its C ABI). Returns the
# implementations built; warns and returns fewer when something is missing.
sub build_floor {
  my $opt = shift;
  my $cc  = $ENV{CC} // 'cc';
  unless ( find_in_path( $cc ) || -x $cc ) {
    warn "note: no C compiler '$cc': no floor columns\n";
    return ();
  }
  make_path( $OUT_DIR );
  my %built;
  my $compile = sub {
    my ( $name, @args ) = @_;
    my $bin = "$OUT_DIR/floor-$name";
    my $log = "$bin.log";
    my $status = system( "'$cc' -O2 -o '$bin' '$FLOOR_SOURCE' @args >'$log' 2>&1" );
    if ( $status ) {
      warn "note: compiling bench/floor.c ($name) failed, see $log\n";
      return;
    }
    unlink $log;
    $built{$name} = { cmd => [$bin] };
  };
  $compile->( 'c' ) or return ();
  $built{floor} = delete $built{c};
  my ( $lib, $libs ) = defined $opt->{ours_lib} ? () : core_link();
  if ( defined $lib ) {
    $compile->( 'core', '-DSL_CORE', "-I'$ROOT/xs'", "'$lib'", $libs );
  }
  elsif ( !defined $opt->{ours_lib} ) {
    warn "note: no static library of the Rust core in the Makefile: no 'core' runs\n";
  }
  return %built;
}

sub bench_cases {
  my $opt   = shift;
  my @sizes = $opt->{quick} ? @QUICK_SIZES : @FULL_SIZES;
  my @cases;
  for my $kind ( qw(store fetch pair) ) {
    push @cases, { kind => $kind, size => $_ } for @sizes;
  }
  push @cases, { kind => $_ } for qw(lock-ex lock-sh version);
  push @cases, { kind => 'fetch-unchanged', size => $_ * 1024 } for $opt->{quick} ? ( 64, 4096 ) : ( 16, 64, 512, 4096 );
  push @cases, { kind => 'two-readers', size => 64 * 1024 };
  $_->{label} = case_label( $_->{kind}, $_->{size} ) for @cases;
  if ( defined $opt->{only} ) {
    # The floor needs the cost of one XS call: ours' version().
    @cases = grep { $_->{label} =~ /$opt->{only}/ || ( $opt->{floor} && $_->{kind} eq 'version' ) } @cases;
    die "--only '$opt->{only}' matches no case\n" unless grep { $_->{label} =~ /$opt->{only}/ } @cases;
  }
  return @cases;
}

# The command of one run, on the block of keys that starts at $key.
sub child_command {
  my ( $impl_name, $impl, $case, $seconds, $key ) = @_;
  return ( @{ $impl->{cmd} }, $case->{kind}, $case->{size} // 0, $seconds, $case->{calibrate}, $key ) if $impl->{cmd};
  return (
    $^X, ( map { "-I$_" } @{ $impl->{inc} } ), $SCRIPT, '--child',
    '--impl', $impl_name, '--from', $impl->{from}, '--version-check', $impl->{version_check},
    '--kind', $case->{kind}, '--seconds', $seconds, '--calibrate', $case->{calibrate}, '--key', $key,
    ( defined $case->{size} ? ( '--size', $case->{size} ) : () ),
  );
}

# Start one child on a block of keys of its own; returns (ops/s or undef,
# error text, the RESULT line's other fields).
sub run_child {
  my ( $impl_name, $impl, $case, $seconds ) = @_;
  my $key = reserve_key_block();
  my @cmd = child_command( $impl_name, $impl, $case, $seconds, $key );
  my $pid = open( my $from_child, '-|', @cmd );
  return ( undef, "cannot start $cmd[0]: $!" ) unless $pid;
  my $output = do { local $/; <$from_child> } // '';
  close $from_child;
  my $status  = $?;
  my $removed = release_key_block( $key );
  warn "  note: removed $removed SysV object(s) the child $pid left behind\n" if $removed;
  return ( undef, 'child ' . describe_status( $status ) ) if $status;
  my ( $result ) = $output =~ /^RESULT (.*)$/m;
  my %fields = map { split /=/, $_, 2 } split ' ', $result // '';
  return ( undef, "no RESULT line in child output: $output" ) unless defined $fields{ops_per_sec};
  return ( $fields{ops_per_sec} + 0, '', \%fields );
}

sub describe_status {
  my $status = shift;
  return 'killed by signal ' . ( $status & 127 ) if $status & 127;
  return 'exited with ' . ( $status >> 8 );
}

sub run_all_rounds {
  my ( $opt, $impls, $cases ) = @_;
  my $timing = $TIMING{ $opt->{quick} ? 'quick' : 'full' };
  my %ops;      # $ops{label}{impl} = [ ops/s per round ]
  my %rounds;   # $rounds{label}{impl}{round} = ops/s
  my %parts;    # $parts{label}{field} = [ per round ], the floor's semop_ns, copy_ns, getval_ns
  my $errors = 0;
  my $interrupted;
  local $SIG{INT} = local $SIG{TERM} = sub { $interrupted = 1 };
  for my $round ( 1 .. $opt->{rounds} ) {
    # Alternate which implementation goes first, to cancel any order effect.
    my @order = grep { $impls->{$_} } $round % 2 ? qw(ours orig floor core) : qw(orig ours core floor);
    for my $case ( @$cases ) {
      $case->{calibrate} = $timing->{calibrate};
      for my $impl_name ( @order ) {
        my ( $result, $error, $fields ) = run_child( $impl_name, $impls->{$impl_name}, $case, $timing->{target} );
        die "interrupted\n" if $interrupted;
        if ( defined $result ) {
          push @{ $ops{ $case->{label} }{$impl_name} }, $result;
          $rounds{ $case->{label} }{$impl_name}{$round} = $result;
          if ( $impl_name eq 'floor' ) {
            push @{ $parts{ $case->{label} }{$_} }, $fields->{$_} for grep { defined $fields->{$_} } qw(semop_ns copy_ns getval_ns);
          }
          printf STDERR "round %d/%d  %-22s %-5s %14.0f ops/s\n", $round, $opt->{rounds},
           $case->{label}, $impl_name, $result;
        }
        else {
          $errors++;
          printf STDERR "round %d/%d  %-22s %-5s FAILED: %s\n", $round, $opt->{rounds},
           $case->{label}, $impl_name, $error;
        }
      }
    }
  }
  return ( \%ops, \%parts, \%rounds, $errors );
}

sub summarize {
  my ( $cases, $ops, $parts, $rounds ) = @_;
  my @rows;
  for my $case ( @$cases ) {
    my %row = ( %$case, by_round => $rounds->{ $case->{label} } || {} );
    for my $impl_name ( qw(ours orig floor core) ) {
      my $runs = $ops->{ $case->{label} }{$impl_name} || [];
      $row{"${impl_name}_runs"}   = $runs;
      $row{"${impl_name}_median"} = median( @$runs );
    }
    $row{"${_}_median"} = median( @{ $parts->{ $case->{label} }{$_} || [] } ) for qw(semop_ns copy_ns getval_ns);
    # Ratio: the median of each round's ours/orig, the two runs of a round
    # being next to each other in time (drift in the machine's speed cancels);
    # the ratio of the medians when a run failed and rounds do not pair up.
    my ( $ours, $orig ) = ( $row{ours_runs}, $row{orig_runs} );
    if ( @$ours && @$ours == @$orig && !grep { $_ <= 0 } @$orig ) {
      $row{ratio} = median( map { $ours->[$_] / $orig->[$_] } 0 .. $#$ours );
    } else {
      $row{ratio} = defined $row{ours_median} && defined $row{orig_median} && $row{orig_median} > 0
       ? $row{ours_median} / $row{orig_median}
       : undef;
    }
    push @rows, \%row;
  }
  add_floor( \@rows );
  return @rows;
}

# The floor of a row in ops/s: the C program's time per operation plus the
# cost of the XS method calls the operation makes from Perl, one call being
# measured as ours' version() (an XS method reading one header word, no
# system call) in the same run. ours/floor is the ratio of the medians.
sub add_floor {
  my $rows = shift;
  my ( $version ) = grep { $_->{kind} eq 'version' } @$rows;
  my $xs_ops = $version && $version->{ours_median};
  return unless $xs_ops;
  for my $row ( @$rows ) {
    next unless $row->{floor_median} && $row->{ours_median};
    $row->{xs_calls}     = $XS_CALLS{ $row->{kind} } // 1;
    $row->{xs_seconds}   = $row->{xs_calls} / $xs_ops / ( $PARALLEL{ $row->{kind} } // 1 );
    $row->{floor_total}  = 1 / ( 1 / $row->{floor_median} + $row->{xs_seconds} );
    $row->{floor_ratio}  = $row->{ours_median} / $row->{floor_total};
  }
}

sub format_or_dash {
  my ( $format, $value ) = @_;
  return defined $value ? sprintf( $format, $value ) : '-';
}

sub print_table {
  my ( $rows, $rounds ) = @_;
  printf "\nmedian of %d round(s), ops/s; ours/orig: median of the rounds' ratios;\n", $rounds;
  print "floor: 0.17's protocol in C (for an unchanged value, the check without the lock) plus the XS call(s)\n";
  print "of one operation; ours/floor: of the medians\n";
  my $line = "%-16s %6s %14s %14s %9s %14s %10s\n";
  printf $line, qw(case size ours orig ours/orig floor ours/floor);
  for my $row ( @$rows ) {
    printf $line, $row->{kind}, ( defined $row->{size} ? size_label( $row->{size} ) : '-' ),
     format_or_dash( '%.0f', $row->{ours_median} ), format_or_dash( '%.0f', $row->{orig_median} ),
     format_or_dash( '%.2f', $row->{ratio} ), format_or_dash( '%.0f', $row->{floor_total} ),
     format_or_dash( '%.2f', $row->{floor_ratio} );
  }
  my ( $version ) = grep { $_->{kind} eq 'version' && $_->{ours_median} } @$rows;
  my @unchanged = grep { $_->{kind} eq 'fetch-unchanged' && $_->{ours_median} } @$rows;
  if ( $version && @unchanged ) {
    print "\nours, unchanged fetch / version(): ",
     join( ', ', map { sprintf '%s %.2f', size_label( $_->{size} ), $_->{ours_median} / $version->{ours_median} } @unchanged ),
     "\n";
  }
  my ( $two ) = grep { $_->{kind} eq 'two-readers' } @$rows;
  my ( $one ) = grep { $_->{kind} eq 'fetch-unchanged' && $two && $_->{size} == $two->{size} } @$rows;
  if ( $two && $one ) {
    printf "two readers at once / one reader, unchanged %s: %s\n", size_label( $two->{size} ), join ', ', map {
      my $name = $_;
      $one->{"${name}_median"} && $two->{"${name}_median"}
       ? sprintf( '%s %.2f', { floor => 'C check', core => 'Rust core' }->{$name} // $name,
        $two->{"${name}_median"} / $one->{"${name}_median"} )
       : ()
    } qw(ours orig floor core);
  }
  print_unchanged_floor( $rows );
}

# The floor of the unchanged rows, in us per fetch: the check without the
# lock in C (the stamp, GETVAL of the writer semaphore, the stamp again)
# plus the XS call, and ours against it.
sub print_unchanged_floor {
  my $rows = shift;
  my @rows = grep { $UNCHANGED{ $_->{kind} } && $_->{floor_total} } @$rows;
  return unless @rows;
  print "\nfloor of an unchanged fetch, us per fetch: the check in C (the stamp, GETVAL of the writer\n";
  print "semaphore, the stamp again) + 1 XS call (two-readers: per fetch of both, the two at once):\n";
  for my $row ( @rows ) {
    my $getval = defined $row->{getval_ns_median} ? sprintf( ' (GETVAL alone %.3f)', $row->{getval_ns_median} / 1000 ) : '';
    printf "  %-20s floor %.3f = check in C %.3f%s + XS %.3f; ours %.3f, ours/floor %.2f\n",
     "$row->{kind} " . size_label( $row->{size} ), 1e6 / $row->{floor_total}, 1e6 / $row->{floor_median}, $getval,
     $row->{xs_seconds} * 1e6, 1e6 / $row->{ours_median}, $row->{floor_ratio};
  }
}

# For every row below $FLOOR_GOAL of its floor: where the time of one
# operation goes, from the parts measured in this run.
sub print_breakdown {
  my ( $rows, $opt, $impls ) = @_;
  my @low = grep { defined $_->{floor_ratio} && $_->{floor_ratio} < $FLOOR_GOAL } @$rows;
  return unless @low;
  my $us = sub { $_[0] ? 1e6 / $_[0] : undef };
  printf "\nwhere the time goes, in us per operation, for rows below %.2f of the floor\n", $FLOOR_GOAL;
  print "(medians; a difference between two implementations is the median of the rounds' differences):\n";
  for my $row ( @low ) {
    my $label = sprintf '%s %s', $row->{kind}, defined $row->{size} ? size_label( $row->{size} ) : '';
    my $ours  = $us->( $row->{ours_median} );
    my $c     = $us->( $row->{floor_median} );
    my $xs    = $row->{xs_seconds} * 1e6;
    my $calls = $row->{xs_calls} == 1 ? '1 XS call' : "$row->{xs_calls} XS calls";
    my $c_parts = '';
    # Each part timed alone, in a loop of its own (so they need not add up).
    if ( defined $row->{semop_ns_median} && defined $row->{copy_ns_median} ) {
      my ( $semop, $copy ) = map { $_ / 1000 } @$row{qw(semop_ns_median copy_ns_median)};
      $c_parts = sprintf ' (alone: semop %.3f, copy %.3f)', $semop, $copy;
    }
    elsif ( defined $row->{getval_ns_median} ) {
      $c_parts = sprintf ' (alone: GETVAL %.3f)', $row->{getval_ns_median} / 1000;
    }
    my $c_name = $UNCHANGED{ $row->{kind} } ? 'check in C' : 'protocol in C';
    printf "  %-20s floor %.3f = %s %.3f%s + %s %.3f\n", $label, $c + $xs, $c_name, $c, $c_parts, $calls, $xs;
    if ( my $core = $us->( $row->{core_median} ) ) {
      # Differences between implementations: the median over rounds of each
      # round's difference (runs of a round are close in time).
      my $core_c    = paired_difference( $row, 'core', 'floor' );
      my $ours_core = paired_difference( $row, 'ours', 'core' );
      printf "  %-20s ours  %.3f: Rust core %.3f (%+.3f vs C), Perl and XS %.3f (%+.3f vs %s)\n", '',
       $ours, $core, $core_c, $ours_core, $ours_core - $xs, $calls;
    }
    else {
      printf "  %-20s ours  %.3f (%+.3f vs the floor)\n", '', $ours, $ours - $c - $xs;
    }
    print_profile( $row, $opt, $impls->{ours}, $ours ) if $opt->{profile} && perf_available();
  }
}

# perf with the cpu-clock software event (needs no hardware counters).
my $perf_ok;
sub perf_available {
  $perf_ok //= find_in_path( 'perf' )
   && system( "perf record -q -e cpu-clock -o '$OUT_DIR/perf-check.data' true >/dev/null 2>&1" ) == 0;
  unlink "$OUT_DIR/perf-check.data";
  return $perf_ok;
}

# One more run of ours for the row, sampled by perf (attached once the child
# runs, so perl's start-up is mostly left out); prints where the samples fell,
# by shared object and the top symbols, in % and in us per operation.
sub print_profile {
  my ( $row, $opt, $impl, $us_per_op ) = @_;
  my $timing = $TIMING{ $opt->{quick} ? 'quick' : 'full' };
  my $data   = "$OUT_DIR/perf-$row->{label}.data";
  # A longer run than the timed ones: perf takes a while to attach.
  my $key    = reserve_key_block();
  my @cmd    = child_command( 'ours', $impl, { %$row, calibrate => $timing->{calibrate} }, 1.5, $key );
  my $pid    = open( my $from_child, '-|', @cmd ) or return;
  my $perf   = fork();
  if ( defined $perf && !$perf ) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    { no warnings 'exec'; exec 'perf', 'record', '-q', '-e', 'cpu-clock', '-p', $pid, '-o', $data }
    POSIX::_exit( 127 );
  }
  my $output = do { local $/; <$from_child> } // '';
  close $from_child;
  my $status = $?;
  waitpid( $perf, 0 ) if $perf;
  release_key_block( $key );
  return if $status || !-s $data;
  my $report = sub {
    my $sort = shift;
    my @lines = `perf report -i '$data' --stdio -q --sort $sort 2>/dev/null`;
    return map { /^\s*([\d.]+)%\s+(?:\[.\]\s+)?(.+?)\s*$/ ? [ $1, $2 ] : () } @lines;
  };
  my $fmt = sub { sprintf '%s %.0f%% %.3f', $_[0][1], $_[0][0], $_[0][0] / 100 * $us_per_op };
  my @dso = grep { $_->[0] >= 1 } $report->( 'dso' );
  my @sym = ( $report->( 'sym' ) )[ 0 .. 5 ];
  printf "  %-20s perf (ours once more; %% of cpu-clock samples, us/op):\n", '';
  printf "  %-20s   %s\n", '', join ', ', map { $fmt->( $_ ) } @dso;
  printf "  %-20s   top: %s\n", '', join ', ', map { $fmt->( $_ ) } grep { defined } @sym;
  unlink $data;
}

# The median over rounds of (us per op of $a) - (us per op of $b), over the
# rounds in which both ran.
sub paired_difference {
  my ( $row, $a, $b ) = @_;
  my ( $ra, $rb ) = map { $row->{by_round}{$_} || {} } $a, $b;
  return median( map { 1e6 / $ra->{$_} - 1e6 / $rb->{$_} } grep { $rb->{$_} } keys %$ra );
}

sub write_csv {
  my ( $rows, $file ) = @_;
  my $num = sub { format_or_dash( $_[0], $_[1] ) =~ s/^-$//r };
  open my $fh, '>', $file or die "cannot write $file: $!\n";
  print $fh join( ',', qw(case size_bytes label ours_ops_per_sec orig_ops_per_sec ratio_ours_orig ours_rounds
   orig_rounds floor_ops_per_sec ratio_ours_floor c_ops_per_sec core_ops_per_sec c_semop_ns c_copy_ns c_getval_ns) ),
   "\n";
  for my $row ( @$rows ) {
    print $fh join( ',',
      $row->{kind}, $row->{size} // '', $row->{label},
      $num->( '%.1f', $row->{ours_median} ),
      $num->( '%.1f', $row->{orig_median} ),
      $num->( '%.4f', $row->{ratio} ),
      join( ';', map { sprintf '%.1f', $_ } @{ $row->{ours_runs} } ),
      join( ';', map { sprintf '%.1f', $_ } @{ $row->{orig_runs} } ),
      $num->( '%.1f', $row->{floor_total} ),
      $num->( '%.4f', $row->{floor_ratio} ),
      $num->( '%.1f', $row->{floor_median} ),
      $num->( '%.1f', $row->{core_median} ),
      $num->( '%.1f', $row->{semop_ns_median} ),
      $num->( '%.1f', $row->{copy_ns_median} ),
      $num->( '%.1f', $row->{getval_ns_median} ),
    ), "\n";
  }
  close $fh or die "cannot write $file: $!\n";
}

# What the numbers were measured on: (label, value) pairs.
sub machine_info {
  my ( %cpu, $cpus );
  if ( open my $fh, '<', '/proc/cpuinfo' ) {
    while ( <$fh> ) {
      $cpus++ if /^processor\s*:/;
      $cpu{$1} //= $2 if /^(model name|vendor_id|cpu family|model|stepping|cpu MHz)\s*:\s*(.*?)\s*$/;
    }
  }
  my $first_line = sub { my $out = `$_[0] 2>/dev/null`; $? == 0 && $out =~ /^(.+)/ ? $1 : 'unknown' };
  my $model = $cpu{'model name'} // ( POSIX::uname() )[4];
  $model .= sprintf ' (%s family %s model %s stepping %s)', @cpu{ 'vendor_id', 'cpu family', 'model', 'stepping' }
   if defined $cpu{vendor_id};
  $model .= ", $cpus logical CPUs" if $cpus;
  my @uname = POSIX::uname();
  return (
    [ cpu    => $model ],
    [ kernel => "$uname[0] $uname[2] $uname[3] $uname[4]" ],
    [ perl   => sprintf( '%vd %s', $^V, $Config{archname} ) ],
    [ rustc  => $first_line->( 'rustc --version' ) ],
    [ cc     => $first_line->( ( $ENV{CC} // 'cc' ) . ' --version' ) ],
    [ libc   => $first_line->( 'getconf GNU_LIBC_VERSION' ) ],
  );
}

sub find_in_path {
  my $program = shift;
  for my $dir ( File::Spec->path ) {
    my $file = File::Spec->catfile( $dir, $program );
    return $file if -f $file && -x _;
  }
  return undef;
}

# ops/s against size, log-log, one line per (store|fetch, implementation).
# Returns true when a chart was written (or there was nothing to draw).
sub write_chart {
  my ( $rows, $png ) = @_;
  my $gnuplot = find_in_path( 'gnuplot' ) or return 1;
  my @series = map { my $kind = $_; map { [ $kind, $_ ] } qw(ours orig) } qw(store fetch);
  my %value;
  my %sizes;
  for my $row ( grep { $_->{kind} eq 'store' || $_->{kind} eq 'fetch' } @$rows ) {
    for my $impl_name ( qw(ours orig) ) {
      my $median = $row->{"${impl_name}_median"} // next;
      $value{ $row->{kind} }{$impl_name}{ $row->{size} } = $median;
      $sizes{ $row->{size} } = 1;
    }
  }
  @series = grep { $value{ $_->[0] }{ $_->[1] } } @series;
  return 1 unless @series;

  my $data = "$png.dat";
  open my $fh, '>', $data or die "cannot write $data: $!\n";
  for my $size ( sort { $a <=> $b } keys %sizes ) {
    print $fh join( ' ', $size, map { $value{ $_->[0] }{ $_->[1] }{$size} // '?' } @series ), "\n";
  }
  close $fh;

  my $xtics = join ', ', map { sprintf '"%s" %d', size_label( $_ ), $_ } sort { $a <=> $b } keys %sizes;
  my $plots = join ', ', map {
    sprintf q{'%s' using 1:%d with linespoints %s title '%s %s'}, $data, $_ + 2,
     ( $series[$_][1] eq 'ours' ? 'lw 2' : 'lw 2 dt 2' ), @{ $series[$_] }
  } 0 .. $#series;
  my $terminal = `"$gnuplot" -e "set terminal" 2>&1` =~ /\bpngcairo\b/ ? 'pngcairo' : 'png';
  my $script = <<"END";
set terminal $terminal size 900,600
set output '$png'
set title 'IPC::ShareLite: ours vs 0.17 (median ops/s)'
set logscale xy
set xlabel 'value size'
set ylabel 'ops/s'
set xtics ($xtics)
set grid
set key outside right
set datafile missing '?'
plot $plots
END
  open my $gp, '|-', $gnuplot or die "cannot run gnuplot: $!\n";
  print $gp $script;
  close $gp;
  unlink $data;
  return $? == 0;
}

# Exit status: 0 when every run succeeded, 1 when some run failed, 2 when the
# benchmark could not run at all.
sub run_parent {
  my @args = @_;
  my $status = eval { parent_main( @args ) };
  return $status if defined $status;
  print STDERR $@;
  return 2;
}

sub parent_main {
  my $opt = parse_parent_options( @_ );
  delete @ENV{qw(PERL5LIB PERLLIB PERL5OPT)};
  my $impls = implementations( $opt );
  my @cases = bench_cases( $opt );
  my @impl_names = grep { $impls->{$_} } qw(ours orig floor core);
  printf STDERR "ours: %s\norig: %s\n%d case(s) x %d implementations (%s) x %d round(s)\n",
   $impls->{ours}{from}, $impls->{orig}{from}, scalar @cases, scalar @impl_names, "@impl_names", $opt->{rounds};
  my @machine = machine_info();

  my ( $ops, $parts, $rounds, $errors ) = run_all_rounds( $opt, $impls, \@cases );
  my @rows = summarize( \@cases, $ops, $parts, $rounds );
  print "\n";
  printf "%-7s %s\n", "$_->[0]:", $_->[1] for @machine;
  print_table( \@rows, $opt->{rounds} );
  print_breakdown( \@rows, $opt, $impls );

  make_path( $OUT_DIR );
  write_csv( \@rows, "$OUT_DIR/results.csv" );
  open my $fh, '>', "$OUT_DIR/machine.txt" or die "cannot write $OUT_DIR/machine.txt: $!\n";
  printf $fh "%s: %s\n", @$_ for @machine;
  close $fh or die "cannot write $OUT_DIR/machine.txt: $!\n";
  print "\nwrote $OUT_DIR/results.csv and $OUT_DIR/machine.txt\n";
  if ( find_in_path( 'gnuplot' ) ) {
    if ( write_chart( \@rows, "$OUT_DIR/chart.png" ) ) {
      print "wrote $OUT_DIR/chart.png\n" if -f "$OUT_DIR/chart.png";
    }
    else {
      warn "gnuplot failed to draw $OUT_DIR/chart.png\n";
      $errors++;
    }
  }
  if ( $errors ) {
    warn "$errors run(s) failed\n";
    return 1;
  }
  return 0;
}

# ---------------------------------------------------------------------------
# Child: load one implementation, time one case, print "RESULT ops_per_sec=N"

sub parse_child_options {
  my @args = @_;
  my %opt;
  GetOptionsFromArray( \@args, \%opt, 'impl=s', 'from=s', 'version-check=s', 'kind=s',
    'size=i', 'seconds=f', 'calibrate=f', 'key=i' )
   or die "bad child options\n";
  return \%opt;
}

sub load_checked_implementation {
  my $opt = shift;
  require IPC::ShareLite;
  my $version = $IPC::ShareLite::VERSION // '(none)';
  my $loaded  = $INC{'IPC/ShareLite.pm'};
  die "$opt->{impl}: IPC/ShareLite.pm loaded from $loaded, not from $opt->{from}\n"
   unless index( abs_path( $loaded ), "$opt->{from}/" ) == 0;
  my $check = $opt->{'version-check'};
  die "$opt->{impl}: wrong implementation loaded (VERSION $version)\n"
   if ( $check eq 'eq' && $version ne '0.17' ) || ( $check eq 'ne' && $version eq '0.17' );
}

# Two handles on one new share: the writer creates (and destroys) it, the
# reader attaches to it.
sub open_share_pair {
  my $key = shift;
  my $writer = IPC::ShareLite->new( -key => $key, -create => 1, -destroy => 1 );
  my $reader = IPC::ShareLite->new( -key => $key, -create => 0, -destroy => 0 );
  return ( $writer, $reader );
}

# Two different values of $size bytes, so consecutive stores never repeat.
sub test_values {
  my $size = shift;
  return map { substr( ( $_ x 7 ) . ( 'abcdefghijklmnopqrstuvwxyz0123456789' x ( $size / 36 + 1 ) ), 0, $size ) }
   ( 'x', 'y' );
}

# Cost of one empty "start timer; stop timer" pair, in seconds.
sub timer_overhead {
  my $n     = 200_000;
  my $spent = 0;
  for ( 1 .. $n ) {
    my $t0 = time;
    $spent += time - $t0;
  }
  return $spent / $n;
}

# A closure timing $n operations of the case; it returns the seconds spent in
# the operations measured. Most cases time the whole loop. 'fetch' needs a
# fresh value before every fetch, so it stores through the writer untimed and
# times each fetch through the reader alone (minus the timer's own cost).
sub make_timed_loop {
  my ( $kind, $writer, $reader, $size, $key ) = @_;
  my @values = defined $size ? test_values( $size ) : ();
  my $bulk = sub {
    my $body = shift;
    return sub { my $n = shift; my $t0 = time; $body->( $n ); return time - $t0 };
  };
  if ( $kind eq 'store' ) {
    my $value = $values[0];
    return $bulk->( sub { $writer->store( $value ) for 1 .. $_[0] } );
  }
  if ( $kind eq 'pair' ) {
    return $bulk->( sub {
      for my $i ( 1 .. $_[0] ) { $writer->store( $values[ $i & 1 ] ); my $got = $reader->fetch }
    } );
  }
  if ( $kind eq 'fetch-unchanged' ) {
    $writer->store( $values[0] );
    return $bulk->( sub { for ( 1 .. $_[0] ) { my $got = $reader->fetch } } );
  }
  if ( $kind eq 'two-readers' ) {
    $writer->store( $values[0] );
    return sub { two_readers( $reader, $key, $_[0] ) };
  }
  if ( $kind eq 'fetch' ) {
    my $overhead = timer_overhead();
    return sub {
      my $n     = shift;
      my $spent = 0;
      for my $i ( 1 .. $n ) {
        $writer->store( $values[ $i & 1 ] );
        my $t0  = time;
        my $got = $reader->fetch;
        $spent += time - $t0;
      }
      return max( $spent - $n * $overhead, 1e-9 );
    };
  }
  if ( $kind eq 'lock-ex' || $kind eq 'lock-sh' ) {
    my $mode = $kind eq 'lock-ex' ? IPC::ShareLite::LOCK_EX() : IPC::ShareLite::LOCK_SH();
    return $bulk->( sub { for ( 1 .. $_[0] ) { $writer->lock( $mode ); $writer->unlock } } );
  }
  if ( $kind eq 'version' ) {
    return $bulk->( sub { for ( 1 .. $_[0] ) { my $v = $writer->version } } );
  }
  die "unknown case kind '$kind'\n";
}

# $n fetches of an unchanged value through $reader, while a forked process
# does $n more through a handle of its own, both starting together. Returns
# half the wall time the 2 * $n fetches took, so ops/s counts both readers.
sub two_readers {
  my ( $reader, $key, $n ) = @_;
  pipe( my $ready_in, my $ready_out ) or die "pipe: $!\n";
  pipe( my $go_in,    my $go_out )    or die "pipe: $!\n";
  my $pid = fork() // die "fork: $!\n";
  if ( !$pid ) {
    # POSIX::_exit: no DESTROY of the inherited handles (0.17 would remove
    # the share in a forked child's DESTROY).
    my $ok = eval {
      my $other = IPC::ShareLite->new( -key => $key, -create => 0, -destroy => 0 );
      my $got = $other->fetch;
      syswrite( $ready_out, 'r' ) == 1 or die "pipe: $!\n";
      sysread( $go_in, my $byte, 1 ) == 1 or die "pipe: $!\n";
      for ( 1 .. $n ) { my $got = $other->fetch }
      1;
    };
    print STDERR "bench: second reader: $@" unless $ok;
    POSIX::_exit( $ok ? 0 : 1 );
  }
  close $ready_out;
  close $go_in;
  my $got = $reader->fetch;
  sysread( $ready_in, my $byte, 1 ) == 1 or die "second reader did not start\n";
  my $t0 = time;
  syswrite( $go_out, 'g' );
  for ( 1 .. $n ) { my $got = $reader->fetch }
  waitpid( $pid, 0 );
  my $wall = time - $t0;
  die "second reader failed\n" if $?;
  return $wall / 2;
}

# Store/fetch round trip across the two handles, before timing anything.
sub check_round_trip {
  my ( $writer, $reader, $size ) = @_;
  my ( $value ) = test_values( $size // 16 );
  $writer->store( $value );
  my $got = $reader->fetch;
  die "round trip of " . length( $value ) . " bytes returned " . length( $got ) . " different bytes\n"
   unless $got eq $value;
}

# Grow $n until one run takes at least $min_seconds of wall time, then scale it
# to $target seconds. Returns the iteration count.
sub calibrate_iterations {
  my ( $loop, $target, $min_seconds ) = @_;
  my $n = 1;
  while ( 1 ) {
    my $t0   = time;
    $loop->( $n );
    my $wall = time - $t0;
    return max( 1, int( $n * $target / $wall ) ) if $wall >= $min_seconds;
    my $grow = $wall > 0 ? 1.5 * $min_seconds / $wall : 10;
    $n = max( $n + 1, int( $n * min( 10, $grow ) ) );
  }
}

sub time_case {
  my ( $opt, $key ) = @_;
  my ( $writer, $reader ) = open_share_pair( $key );
  check_round_trip( $writer, $reader, $opt->{size} );
  my $loop   = make_timed_loop( $opt->{kind}, $writer, $reader, $opt->{size}, $key );
  my $n      = calibrate_iterations( $loop, $opt->{seconds}, $opt->{calibrate} );
  my $spent  = $loop->( $n );
  undef $loop;
  undef $reader;
  undef $writer;   # -destroy: removes the share
  return ( $n / $spent, $n, $spent );
}

sub child_main {
  my $opt = parse_child_options( @_ );
  my $key = $opt->{key} // die "bench child: no --key\n";
  my @earlier = segments_made_here();    # by an earlier process of this pid
  local $SIG{INT} = local $SIG{TERM} = local $SIG{HUP} = sub { die "caught signal $_[0]\n" };
  my ( $ops, $n, $spent ) = eval {
    load_checked_implementation( $opt );
    time_case( $opt, $key );
  };
  my $error = $@;
  my @left  = segments_made_here( @earlier );
  my $left  = grep { shmctl( $_, IPC_RMID, 0 ) } @left;
  if ( !defined $ops ) {
    print STDERR "bench child ($opt->{impl} $opt->{kind}): $error";
    return 1;
  }
  print STDERR "  warning: $opt->{impl} left $left SysV object(s) after -destroy (removed)\n" if $left;
  printf "RESULT ops_per_sec=%.3f iterations=%d seconds=%.4f\n", $ops, $n, $spent;
  return 0;
}
