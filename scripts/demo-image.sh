#!/usr/bin/env bash
# Builds the demo's image, supd-demo/hello:1, as an oci-archive at OUT:
# busybox-static and a loop, committed and pushed with buildah (offline).
# Usage: demo-image.sh OUT
set -euo pipefail
out=$1
work=$(mktemp -d)
buildah_() { STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot buildah --root "$work/storage" --runroot "$work/run" "$@"; }
trap 'buildah_ rm -a >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,tmp}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in sh echo sleep date hostname cat; do ln -s busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
ctr=$(buildah_ from scratch)
buildah_ copy "$ctr" "$root" / >/dev/null
buildah_ config --env GREETING="hello from an image" \
  --cmd '["/bin/sh","-c","while true; do echo \"$GREETING on $(hostname) at $(date -u +%H:%M:%S)\"; sleep 5; done"]' "$ctr"
buildah_ commit -q "$ctr" supd-demo/hello:1 >/dev/null
rm -f "$out"
buildah_ push -q supd-demo/hello:1 "oci-archive:$out:supd-demo/hello:1"
