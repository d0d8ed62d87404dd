#!/usr/bin/env bash
# Runs the benchmark suite (benches/suite) on the static release build and
# prints its table; installs the anchors (crun, runc) and what the suite's
# rootfs needs first. Extra arguments go to `cargo bench`.
# SUPD_BENCH_QUICK=1: a few iterations of everything; SUPD_BENCH_IDLE=N:
# the idle measurement in seconds (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages busybox-static gcc libc6-dev crun runc
ensure_rust
export_static_flags
cargo bench --quiet --target "$SUPD_TARGET" --bench suite "$@"
