#!/usr/bin/env bash
# The seccomp code for the other architectures Debian builds supd for:
# their unit tests (syscall tables against each target's libc, the filter
# compiler, the profiles), cross-compiled and run under qemu-user. The
# filters themselves are only installed for real on x86_64 (here and in
# the cgroup v2 guest), where a 32-bit x86 program checks the compat part.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf gcc-i686-linux-gnu qemu-user
ensure_rust
if ! command -v rustup >/dev/null 2>&1; then
  # Debian's own rustc has the host's standard library only.
  echo "no rustup: the standard libraries for aarch64, armv7 and i686 come from rustup; the cross-architecture seccomp tests are skipped (install rustup to run them)"
  exit 0
fi
targets="aarch64-unknown-linux-gnu:aarch64-linux-gnu:qemu-aarch64
armv7-unknown-linux-gnueabihf:arm-linux-gnueabihf:qemu-arm
i686-unknown-linux-gnu:i686-linux-gnu:qemu-i386"
for entry in $targets; do
  IFS=: read -r target gnu qemu <<< "$entry"
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" >/dev/null 2>&1 || {
      echo "cannot install the Rust standard library for $target (rustup target add)" >&2
      exit 1
    }
  fi
  var=$(echo "$target" | tr 'a-z-' 'A-Z_')
  echo "== $target: seccomp unit tests under $qemu"
  env "CARGO_TARGET_${var}_LINKER=$gnu-gcc" "CC_${target//-/_}=$gnu-gcc" \
    "CARGO_TARGET_${var}_RUNNER=$qemu -L /usr/$gnu" \
    cargo test --quiet --target "$target" --lib -- runtime::security:: 2>&1 | grep -E '^test result|FAILED|panicked'
done
