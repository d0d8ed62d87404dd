#!/usr/bin/env bash
# Builds the Debian package with cargo-deb, from the static release build:
# target/<host triple>/debian/supd_*.deb.
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
export_static_flags
cargo deb --quiet --target "$SUPD_TARGET" >&2
ls -t "target/$SUPD_TARGET/debian/"supd_*.deb | head -1
