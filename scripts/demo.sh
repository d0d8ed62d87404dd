#!/usr/bin/env bash
# Builds supd and runs it in the foreground on the units in examples/.
# State, logs and the control socket live in ./.demo; Ctrl-C stops every
# container and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages busybox-static
ensure_rust
export_static_flags
cargo build --release --quiet --target "$SUPD_TARGET"
demo="$PWD/.demo"
mkdir -p "$demo"
cat <<MSG
supd is starting on examples/. In another terminal:
  export SUPD_SOCKET=$demo/supd.sock
  $PWD/$SUPD_RELEASE/supctl status
  $PWD/$SUPD_RELEASE/supctl logs -f ticker
  curl http://127.0.0.1:8080/
Press Ctrl-C here to stop all containers and exit.
MSG
exec "$SUPD_RELEASE/supd" \
  --units-dir "$PWD/examples" \
  --state-dir "$demo/state" \
  --runtime-dir "$demo/run" \
  --log-dir "$demo/log" \
  --socket "$demo/supd.sock"
