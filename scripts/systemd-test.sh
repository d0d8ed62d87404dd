#!/usr/bin/env bash
# The Debian package under a real systemd: boots Debian 13 with systemd as
# PID 1 under QEMU (TCG), pure cgroup v2 and the cloud kernel of the v2
# tier, installs the freshly built .deb with dpkg -i and drives the service
# (scripts/systemd/checks.sh, run in the guest by a unit of its own): READY=1,
# STATUS=, delegation, journald, the watchdog, reload, stop, kill, a boot
# with the service enabled by the package, an upgrade to a second build
# while containers run, and a purge. Two boots of the same disk. Exits
# non-zero unless every check passed; a failure names the check and shows
# the journal around it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages qemu-system-x86 busybox-static cpio debootstrap e2fsprogs zstd kmod dpkg-dev gcc libc6-dev
ensure_rust

tier=target/systemd-vm
mkdir -p "$tier" target/vm
# One guest at a time (the v2 tier takes the same lock).
exec 9>target/vm/lock
flock 9
ensure_vm_kernel target/vm/kernel
kernel_version=$(basename "$VM_MODULES")
SUPD_TARGET=$(host_target)

echo "== the packages: this build, and a second one with another version"
old_deb=$(bash scripts/package.sh)
version=$(dpkg-deb -f "$old_deb" Version)
new_version="$version+upgrade"
rm -rf "$tier/new-deb"
dpkg-deb -R "$old_deb" "$tier/new-deb"
# The second build: the same sources, a different version string compiled
# in (a static debug build, the quickest one that differs).
SUPD_VERSION="$new_version" RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --quiet --target "$SUPD_TARGET" --bins
for binary in supd supctl; do
  strip -o "$tier/new-deb/usr/bin/$binary" "target/$SUPD_TARGET/debug/$binary"
done
sed -i "s/^Version: .*/Version: $new_version/" "$tier/new-deb/DEBIAN/control"
(cd "$tier/new-deb" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's| \./| |') \
  > "$tier/md5sums" && mv "$tier/md5sums" "$tier/new-deb/DEBIAN/md5sums"
dpkg-deb --root-owner-group -b "$tier/new-deb" "$tier/supd-new.deb" >/dev/null

echo "== the Debian 13 root with systemd"
ensure_trixie_root || { echo "no Debian mirror: cannot build the systemd tier's root" >&2; exit 1; }
root="$tier/root"
rm -rf "$root"
mkdir -p "$root"
zstd -q -dc "$TRIXIE_ROOT" | tar -C "$root" -xf -
mkdir -p "$root/lib/modules"
cp -a "$VM_MODULES" "$root/lib/modules/"
depmod -b "$root" "$kernel_version"
echo supd-tier > "$root/etc/hostname"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$root/etc/machine-id"
echo "# / is mounted read-write by the tier's initramfs" > "$root/etc/fstab"
# Boot 2 reads boot 1's journal.
mkdir -p "$root/var/log/journal"
# No terminals to log in on (nothing would answer them).
ln -sf /dev/null "$root/etc/systemd/system/getty.target"
mkdir -p "$root/root/tier" "$root/etc/systemd/system/supd.service.d"
cp "$old_deb" "$root/root/tier/supd-old.deb"
cp "$tier/supd-new.deb" "$root/root/tier/supd-new.deb"
cp scripts/systemd/checks.sh "$root/root/tier/checks.sh"
gcc -static -O2 -o "$root/root/tier/debug-exit" scripts/vm/debug-exit.c
# The watchdog check wants a shorter wait than the shipped 30s.
printf '[Service]\nWatchdogSec=10s\n' > "$root/etc/systemd/system/supd.service.d/tier-watchdog.conf"
cat > "$root/etc/systemd/system/supd-tier.service" <<'UNIT'
[Unit]
Description=supd's systemd tier checks
After=multi-user.target

[Service]
Type=simple
ExecStart=/bin/bash /root/tier/checks.sh
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../supd-tier.service "$root/etc/systemd/system/multi-user.target.wants/supd-tier.service"
rm -f "$tier/disk.img"
mke2fs -q -t ext4 -d "$root" -L supd-tier "$tier/disk.img" 3G
rm -rf "$root"

echo "== the initramfs: mounts the disk and hands over to systemd"
initramfs="$tier/initramfs"
rm -rf "$initramfs"
mkdir -p "$initramfs"/{bin,proc,dev,newroot,lib/modules}
cp "$(command -v busybox)" "$initramfs/bin/busybox"
for applet in sh mount umount insmod switch_root sleep poweroff echo; do
  ln -s busybox "$initramfs/bin/$applet"
done
disk_modules="virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk"
for module in $disk_modules; do
  unpack_module "$VM_MODULES" "drivers/$module" "$initramfs/lib/modules" || continue
  basename "$module" >> "$initramfs/modules"
done
cat > "$initramfs/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for module in $(cat /modules); do insmod /lib/modules/$module.ko; done
for _ in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -o rw /dev/vda /newroot || { echo "cannot mount the tier's disk"; poweroff -f; }
umount /dev /proc
exec switch_root /newroot /sbin/init
INIT
chmod +x "$initramfs/init"
(cd "$initramfs" && find . | cpio -o -H newc --quiet | gzip -1) > "$tier/initramfs.cpio.gz"

# boot PHASE: one boot of the disk; the guest's console goes to a file,
# its results to another.
boot() {
  local phase=$1 started
  : > "$tier/results-$phase.txt"
  started=$(date +%s)
  set +e
  timeout 1200 qemu-system-x86_64 -accel tcg -m 1536 -smp 2 \
    -kernel "$VM_VMLINUZ" -initrd "$tier/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 cgroup_no_v1=all supd.phase=$phase" \
    -display none -no-reboot -nic none \
    -drive "file=$tier/disk.img,format=raw,if=virtio" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial "file:$tier/console-$phase.txt" -serial "file:$tier/results-$phase.txt" < /dev/null
  qemu=$?
  set -e
  echo "== boot $phase ($(( $(date +%s) - started )) s, qemu exit $qemu)"
  cat "$tier/results-$phase.txt"
}
# failed BOOT WHY: the end of that boot's console, and the verdict.
failed() {
  tail -n 40 "$tier/console-$1.txt" >&2 2>/dev/null || true
  echo "the systemd tier FAILED: $2; the guest's consoles are in $tier/console-*.txt" >&2
  exit 1
}
boot 1
grep -q '^SUPD-SYSTEMD phase 1 done' "$tier/results-1.txt" || failed 1 "boot 1 did not finish"
boot 2
# Passing needs QEMU's exit through isa-debug-exit with value 0 and the
# guest's last line, and no failed check in either boot.
if [ "$qemu" -ne 1 ] || ! grep -q '^SUPD-SYSTEMD done status=0' "$tier/results-2.txt" \
    || grep -q '^SUPD-SYSTEMD FAIL' "$tier"/results-*.txt; then
  failed 2 "$(grep -h '^SUPD-SYSTEMD FAIL' "$tier"/results-*.txt | cut -d: -f1 | sed 's/^SUPD-SYSTEMD FAIL //' | paste -sd, -)"
fi
rm -f "$tier/disk.img"
echo "the systemd tier passed"
