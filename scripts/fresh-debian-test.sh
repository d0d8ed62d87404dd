#!/usr/bin/env bash
# The README's commands start on a bare Debian: in a debootstrapped Debian 13
# chroot (trixie, minbase with systemd: the systemd tier's root),
# scripts/lib.sh's ensure_rust finds no Rust,
# installs Debian's rustc and cargo (1.85 or later) and the toolchain
# builds and links a program. The Debian root is made once and kept as a
# tarball under target/; each run unpacks a fresh copy. Without a Debian
# mirror it says so and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
if ! ensure_trixie_root; then
  echo "no Debian mirror: the fresh Debian 13 check is skipped"
  exit 0
fi
root=$(mktemp -d /tmp/supd-fresh.XXXXXX)
cleanup() {
  for mount in "$root/repo" "$root/proc" "$root/dev"; do
    mountpoint -q "$mount" && umount -l "$mount"
  done
  rm -rf "$root"
}
trap cleanup EXIT
zstd -q -dc "$TRIXIE_ROOT" | tar -C "$root" -xf -
mkdir -p "$root/repo"
mount --bind "$PWD/scripts" "$root/repo" -o ro
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
started=$(date +%s)
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash -euc '
  command -v cargo >/dev/null && { echo "the fresh root has cargo already" >&2; exit 1; }
  cd /tmp
  . /repo/lib.sh
  ensure_rust
  rustc --version
  cargo --version
  mkdir -p /tmp/hello/src
  printf "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n" > /tmp/hello/Cargo.toml
  echo "fn main() { println!(\"built on a fresh Debian\"); }" > /tmp/hello/src/main.rs
  cd /tmp/hello && cargo build --quiet --offline && ./target/debug/hello
'
echo "fresh Debian 13: Rust installed and a program built in $(( $(date +%s) - started )) s"
