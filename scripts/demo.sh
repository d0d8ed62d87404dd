#!/usr/bin/env bash
# Builds supd and runs it in the foreground on the units in examples/.
# State, logs and the control socket live in ./.demo; Ctrl-C stops every
# container and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages busybox-static buildah
ensure_rust
export_static_flags
cargo build --release --quiet --target "$SUPD_TARGET"
demo="$PWD/.demo"
mkdir -p "$demo"
# examples/hello-image.yaml runs an image: build it, and import it once supd
# answers (the unit is invalid until then, and starts by itself after).
bash scripts/demo-image.sh "$demo/hello-image.oci.tar"
supctl="$PWD/$SUPD_RELEASE/supctl"
(
  for _ in $(seq 100); do [ -S "$demo/supd.sock" ] && break; sleep 0.1; done
  SUPD_SOCKET="$demo/supd.sock" "$supctl" image import -q "$demo/hello-image.oci.tar"
) &
cat <<MSG
supd is starting on examples/. In another terminal:
  export SUPD_SOCKET=$demo/supd.sock
  $PWD/$SUPD_RELEASE/supctl status
  $PWD/$SUPD_RELEASE/supctl logs -f ticker
  $PWD/$SUPD_RELEASE/supctl image list
  curl http://127.0.0.1:8080/
Press Ctrl-C here to stop all containers and exit.
MSG
exec "$SUPD_RELEASE/supd" \
  --units-dir "$PWD/examples" \
  --state-dir "$demo/state" \
  --runtime-dir "$demo/run" \
  --log-dir "$demo/log" \
  --socket "$demo/supd.sock"
