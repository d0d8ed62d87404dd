#!/usr/bin/env bash
# Runs the benchmark suite (benches/suite) on the static release build and
# prints its table; installs the anchors (crun, runc) and what the suite's
# rootfs needs first. Extra arguments go to `cargo bench`.
# SUPD_BENCH_QUICK=1: a few iterations of everything; SUPD_BENCH_IDLE=N:
# the idle measurement in seconds (default 60); SUPD_BENCH_ONLY=single,
# many, restore, images or planning: one section.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages busybox-static gcc libc6-dev crun runc buildah podman
ensure_rust
export_static_flags
# The daemons' directories on a tmpfs, as /run is on a real host: supd
# rewrites its unit records in RUNTIME_DIR at every start and exit, which
# costs an ext4 /tmp several ms of writeback per restart.
bench_tmp=$(mktemp -d)
mount -t tmpfs -o mode=0755 supd-bench "$bench_tmp"
trap 'umount "$bench_tmp"; rmdir "$bench_tmp"' EXIT
TMPDIR="$bench_tmp" cargo bench --quiet --target "$SUPD_TARGET" --bench suite "$@"
