#!/bin/bash
# check.sh [TARGET...]: type-checks the Rust core and its C ABI (crates sharelite and sharelite-ffi, lib) of the project
# checkout in the current directory (its HEAD, cloned afresh) for other systems and CPUs.
# rustup here has no other targets and cannot download them, so std is built from source:
# a Debian trixie chroot (chroot.sh amd64, tag "check") with Debian's rustc, cargo and
# rust-src, RUSTC_BOOTSTRAP=1 and -Zbuild-std. Nothing is linked: this proves that the code
# compiles against each target's libc definitions, not that it runs (run.sh does that).
# First run: the chroot (~3 min) and std for each target (~1 min each); later ~40 s each.
# Prints one line per target and "cross-check: N/M targets type-check (failing: ...)" last;
# exits 0 only if all do. Needs root. Logs: $CROSS_ROOT/logs/check-TARGET.log.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
src=$(git rev-parse --show-toplevel 2>/dev/null) || { echo "check.sh: not in a git checkout" >&2; exit 2; }
root=${CROSS_ROOT:-/tmp/cross}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(x86_64-unknown-freebsd x86_64-unknown-netbsd x86_64-unknown-openbsd
  x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-solaris x86_64-unknown-illumos
  i686-unknown-linux-gnu aarch64-unknown-linux-gnu s390x-unknown-linux-gnu)
mkdir -p "$root/logs"
dir=$(CROSS_TAG=check CROSS_EXTRA_PKGS=rust-src "$here/chroot.sh" amd64 2>"$root/logs/chroot-check.err") ||
  { echo "check.sh: no chroot: $(tail -n 2 "$root/logs/chroot-check.err" | paste -sd' ')"; exit 2; }
rm -rf "$dir/src"; git clone -q --no-hardlinks "$src" "$dir/src" || exit 2
pass=0 failing=()
for t in "${targets[@]}"; do
  log=$root/logs/check-$t.log
  unshare -m --propagation private bash -c 'mount -t proc proc "$1/proc"; chroot "$1" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \
      RUSTC_BOOTSTRAP=1 CARGO_HOME=/root/cargo-home CARGO_TARGET_DIR=/root/target \
      bash -c "cd /src && timeout 1200 cargo check -q -p sharelite -p sharelite-ffi --lib -Zbuild-std=std,panic_unwind --target $2"' _ "$dir" "$t" >"$log" 2>&1
  rc=$?
  if [[ $rc == 0 ]]; then pass=$((pass + 1)); echo "$t: ok"
  else
    failing+=("$t")
    n=$(grep -c '^error\[' "$log")
    first=$(grep -A2 '^error' "$log" | sed -n 's/^error[^:]*: //p; s/^ *--> //p' | head -4 | paste -sd' ')
    echo "$t: fails ($n errors; rc $rc): $first"
  fi
done
echo "cross-check: $pass/${#targets[@]} targets type-check${failing:+ (failing: ${failing[*]})}"
[[ ${#failing[@]} == 0 ]]
