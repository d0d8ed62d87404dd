#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: target/debian/supd_*.deb.
# Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_packages dpkg-dev gcc
ensure_rust
if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb" >&2
  cargo install --quiet --locked cargo-deb >&2
fi
cargo deb --quiet >&2
ls -t target/debian/supd_*.deb | head -1
