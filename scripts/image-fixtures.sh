#!/usr/bin/env bash
# Builds the images tests/images.rs imports, with the tools operators use
# (buildah, umoci, skopeo), offline, from a busybox-static rootfs:
#   oci/            an OCI layout (buildah push oci:) holding
#                     bb:1   one layer; Cmd prints and sleeps; Env, WorkingDir
#                     bb:2   bb:1 plus a layer (umoci repack) that deletes
#                            /etc/removeme and replaces /olddir
#                     bad    bb:1 whose Cmd does not exist
#   bb.oci.tar      oci-archive of bb:1 (skopeo copy)
#   bb.docker.tar   docker-archive of bb:1 (skopeo copy), as docker save writes
#   zstd/           bb:1 with zstd layers (skopeo --dest-compress-format zstd)
#   plain/          bb:1 with uncompressed layers
#   dir/            bb:1 in skopeo's dir: transport (as podman save --format docker-dir)
#   multi/          a multi-platform index (buildah manifest): bb:1 for this
#                   host's architecture, bad marked as arm64
#   hc.docker.tar   a Docker-format image (buildah --format docker) with a
#                   HEALTHCHECK: test -f /tmp/ok, every second
# Usage: image-fixtures.sh OUT
set -euo pipefail
out=$1
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
work=$(mktemp -d)
storage="$work/storage"
buildah_() { buildah --root "$storage" --runroot "$work/run" "$@"; }
trap 'buildah_ rm -a >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
busybox=$(command -v busybox)
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,olddir,tmp}
cp "$busybox" "$root/bin/busybox"
for applet in sh echo sleep cat ls test env pwd; do ln -s busybox "$root/bin/$applet"; done
printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
echo old > "$root/olddir/old-file"
echo remove me > "$root/etc/removeme"

ctr=$(buildah_ from scratch)
buildah_ copy "$ctr" "$root" / >/dev/null
buildah_ config --env GREETING=hello --workingdir /olddir \
  --cmd '["/bin/sh","-c","echo \"$GREETING from bb:1 in $(pwd)\"; exec sleep 100000"]' "$ctr"
buildah_ commit -q "$ctr" localhost/bb:1 >/dev/null
buildah_ push -q localhost/bb:1 "oci:$out.tmp/oci:bb:1"

# The upper layer, as umoci computes it from a changed rootfs.
umoci unpack --image "$out.tmp/oci:bb:1" "$work/bundle" >/dev/null
rm "$work/bundle/rootfs/etc/removeme"
rm -rf "$work/bundle/rootfs/olddir"
mkdir "$work/bundle/rootfs/olddir"
echo new > "$work/bundle/rootfs/olddir/new-file"
umoci repack --image "$out.tmp/oci:bb:2" "$work/bundle"
umoci config --image "$out.tmp/oci:bb:2" \
  --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo bb:2 sees: $(ls /olddir /etc); exec sleep 100000'
umoci config --image "$out.tmp/oci:bb:1" --tag bad --config.cmd /does/not/exist

skopeo copy -q "oci:$out.tmp/oci:bb:1" "oci-archive:$out.tmp/bb.oci.tar:bb:1"
skopeo copy -q "oci:$out.tmp/oci:bb:1" "docker-archive:$out.tmp/bb.docker.tar:localhost/bb:1"
skopeo copy -q --dest-compress-format zstd "oci:$out.tmp/oci:bb:1" "oci:$out.tmp/zstd:bb:1"
# docker-archive layers are plain tars; the OCI copy may keep them so.
skopeo copy -q --dest-oci-accept-uncompressed-layers \
  "docker-archive:$out.tmp/bb.docker.tar" "oci:$out.tmp/plain:bb:1"

skopeo copy -q "oci:$out.tmp/oci:bb:1" "dir:$out.tmp/dir"

buildah_ manifest create localhost/multi >/dev/null
buildah_ manifest add localhost/multi "oci:$out.tmp/oci:bb:1" >/dev/null
buildah_ manifest add --arch arm64 --variant v8 localhost/multi "oci:$out.tmp/oci:bad" >/dev/null
buildah_ manifest push --quiet --all localhost/multi "oci:$out.tmp/multi:multi"
# HEALTHCHECK exists in Docker's config format only.
ctr=$(buildah_ from localhost/bb:1)
buildah_ config --healthcheck 'CMD test -f /tmp/ok' --healthcheck-interval 1s \
  --healthcheck-timeout 1s --healthcheck-retries 2 \
  --cmd '["/bin/sh","-c","echo > /tmp/ok; exec sleep 100000"]' "$ctr" 2>/dev/null
buildah_ commit -q --format docker "$ctr" localhost/hc:1 >/dev/null
buildah_ push -q localhost/hc:1 "docker-archive:$out.tmp/hc.docker.tar:localhost/hc:1"
mv "$out.tmp" "$out"
