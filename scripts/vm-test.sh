#!/usr/bin/env bash
# Runs the root integration tests on a pure cgroup v2 kernel: Debian's cloud
# kernel booted under QEMU's software emulation (TCG), with an initramfs that
# holds static builds of supd, supctl and the test binaries. Exits non-zero
# unless every test passed inside the guest. SUPD_VM_ONLY=world (say) runs
# only the test binaries of that name, for work on one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages qemu-system-x86 busybox-static cpio xz-utils python3 gcc libc6-dev binutils buildah umoci skopeo nftables socat iproute2 tzdata gcc-i686-linux-gnu debootstrap e2fsprogs
ensure_rust

target=x86_64-unknown-linux-gnu
vm=target/vm
mkdir -p "$vm"
# One guest at a time: two would share the results file and the CPUs.
exec 9>"$vm/lock"
flock 9

ensure_vm_kernel "$vm/kernel"
vmlinuz=$VM_VMLINUZ
moddir=$VM_MODULES

echo "== building static binaries and test executables"
export RUSTFLAGS='-C target-feature=+crt-static'
cargo build --quiet --target "$target" --bins
cargo test --quiet --target "$target" --no-run --message-format=json 2>/dev/null > "$vm/build.json"
# Integration test binaries only: they need root, namespaces and cgroups.
mapfile -t tests < <(python3 - "$vm/build.json" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("profile", {}).get("test") \
            and msg.get("target", {}).get("kind") == ["test"] and msg.get("executable") \
            and msg["target"]["name"] != "generated" \
            and os.environ.get("SUPD_VM_ONLY", msg["target"]["name"]) == msg["target"]["name"]:
        # (generated reads the source tree)
        print(msg["executable"])
PY
)
[ ${#tests[@]} -gt 0 ] || { echo "no test executables found" >&2; exit 1; }

echo "== building the initramfs"
root="$vm/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib/modules,newroot}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf /bin/busybox "$root/bin/$applet"
done
ln -sf /bin/busybox "$root/usr/bin/unshare"
gcc -static -O2 -o "$root/bin/debug-exit" scripts/vm/debug-exit.c
# The binaries go where the tests were told they are (absolute paths),
# without their debug info: the guest holds the initramfs, and a copy of
# it, in RAM (70 MB per test binary with it, a sixth of that without;
# panic messages keep their file and line).
for file in "$PWD/target/$target/debug/supd" "$PWD/target/$target/debug/supctl" "${tests[@]}"; do
  mkdir -p "$root$(dirname "$file")"
  strip --strip-debug -o "$root$file" "$file"
done
# Host programs tests/world.rs runs, in the guest and in containers whose
# root is the guest's /, with their libraries; busybox's applets of the
# same names would come first in PATH.
for program in nft socat ip ss getent mke2fs resize2fs; do
  path=$(command -v "$program") || { echo "$program is missing: bash scripts/test.sh installs it" >&2; exit 1; }
  real=$(readlink -f "$path")
  rm -f "$root/bin/$program" "$root/sbin/$program"
  mkdir -p "$root/usr/bin"
  cp "$real" "$root/usr/bin/$program"
  for lib in $(ldd "$real" | awk '/=> \// {print $3} /^\t\// {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
# supd makes the ext4 images of `resources.storage` with mke2fs.
cp /etc/mke2fs.conf "$root/etc/"
# The zones tests/inputs.rs sets (`timezone:`), and a host zone for `host`.
mkdir -p "$root/usr/share/zoneinfo/Europe" "$root/usr/share/zoneinfo/Etc"
cp /usr/share/zoneinfo/Europe/Berlin "$root/usr/share/zoneinfo/Europe/"
cp /usr/share/zoneinfo/Etc/UTC "$root/usr/share/zoneinfo/Etc/"
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
# CARGO_TARGET_TMPDIR of the static build, where the tests look for it.
mkdir -p "$root$PWD/target/$target/tmp"
gcc -static -O2 -o "$root$PWD/target/$target/tmp/sd-notify" tests/helpers/sd-notify.c
i686-linux-gnu-gcc -static -O2 -o "$root$PWD/target/$target/tmp/compat32" tests/helpers/compat32.c
# The images tests/images.rs imports, made by buildah, umoci and skopeo,
# which the guest does not have.
bash scripts/image-fixtures.sh "$root$PWD/target/$target/tmp/image-fixtures-3"
# Modules the tests need, in dependency order; the kernel has no modules.dep
# here, so the guest insmods them one by one.
modules="fs/overlayfs/overlay net/llc/llc net/802/stp net/bridge/bridge drivers/net/veth drivers/net/dummy drivers/net/tun drivers/net/macvlan drivers/net/ipvlan/ipvlan drivers/block/loop"
# nftables for NAT and published ports (the kernel cannot autoload them:
# the guest has no modprobe).
# virtio for the disk that holds tests/boot.rs's Debian root.
modules="$modules drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk"
# The quota format ext4's project quota keeps (tests/storage.rs).
modules="$modules fs/quota/quota_tree fs/quota/quota_v2"
modules="$modules lib/libcrc32c net/netfilter/nfnetlink net/netfilter/nf_tables net/ipv4/netfilter/nf_defrag_ipv4 net/ipv6/netfilter/nf_defrag_ipv6 net/netfilter/nf_conntrack net/netfilter/nf_nat net/netfilter/nft_chain_nat net/netfilter/nft_nat net/netfilter/nft_masq net/netfilter/nft_ct net/netfilter/nft_fib net/ipv4/netfilter/nft_fib_ipv4 net/ipv6/netfilter/nft_fib_ipv6 net/netfilter/nft_fib_inet"
for module in $modules; do
  basename "$module" >> "$root/etc/supd-modules"
  unpack_module "$moddir" "$module" "$root/lib/modules" || true
done
printf '%s\n' "${tests[@]}" > "$root/etc/supd-tests"
# tests/boot.rs boots a debootstrapped Debian: the host's copy (which the
# host tests made under target/tmp, or debootstrap makes now) goes into the
# guest on a disk, mounted where the static build's tests look for it.
debian="$PWD/target/tmp/debian-bookworm-systemd"
if [ ! -e "$debian/lib/systemd/systemd" ]; then
  debootstrap --variant=minbase --include=systemd,systemd-sysv bookworm "$debian.tmp" http://deb.debian.org/debian >/dev/null 2>&1 \
    && mv "$debian.tmp" "$debian" || { rm -rf "$debian.tmp"; echo "no Debian mirror: tests/boot.rs will skip in the guest" >&2; }
fi
disk=()
if [ -e "$debian/lib/systemd/systemd" ]; then
  rm -f "$vm/debian.img"
  mke2fs -q -t ext4 -d "$debian" -L supd-debian "$vm/debian.img" 1G
  disk=(-drive "file=$vm/debian.img,format=raw,if=virtio,readonly=on")
  echo "$PWD/target/$target/tmp/debian-bookworm-systemd" > "$root/etc/supd-debian"
fi
# What every Debian host has, and the tests use (nobody, nogroup).
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
if [ "$1" != stage2 ]; then
  mount -t proc proc /proc
  mount -t devtmpfs dev /dev
  # pivot_root cannot leave the initramfs: containers need / on a real mount.
  mount -t tmpfs -o size=1800M tmpfs /newroot
  for entry in /*; do
    case "$entry" in /proc|/sys|/dev|/newroot) mkdir -p "/newroot$entry" ;; *) cp -a "$entry" /newroot/ ;; esac
  done
  umount /dev /proc
  exec switch_root /newroot /init stage2
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+cpuset +cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
report() { echo "$*" > /dev/ttyS1; echo "$*"; }
# Dependency order: stp needs llc, bridge needs both.
for module in $(cat /etc/supd-modules); do
  [ -f /lib/modules/$module.ko ] || { report "SUPD-VM module $module missing"; continue; }
  insmod /lib/modules/$module.ko || report "SUPD-VM insmod $module failed"
done
ip link set lo up
if [ -f /etc/supd-debian ]; then
  mkdir -p "$(cat /etc/supd-debian)"
  mount -o ro /dev/vda "$(cat /etc/supd-debian)" || report "SUPD-VM cannot mount the Debian disk"
else
  export SUPD_TEST_ALLOW_MISSING=debian-mirror
fi
# promtool (Go, 40 MB) stays on the host: tests/metrics.rs checks the
# exposition with it there, and here only what it says.
export SUPD_TEST_ALLOW_MISSING="${SUPD_TEST_ALLOW_MISSING:+$SUPD_TEST_ALLOW_MISSING,}promtool"
report "SUPD-VM kernel $(uname -r), cgroup: $(cat /sys/fs/cgroup/cgroup.controllers)"
status=0
for test in $(cat /etc/supd-tests); do
  name=$(basename "$test")
  # Streamed, so that a test that hangs shows where.
  { "$test" --test-threads=2 --nocapture 2>&1; echo $? > /tmp/rc; } | tee /tmp/out
  rc=$(cat /tmp/rc)
  grep -E '^(test result:|ping RTT|cpu.max 0.2: measured)' /tmp/out | while read -r line; do report "SUPD-VM $name: $line"; done
  report "SUPD-VM $name exit=$rc"
  [ $rc -eq 0 ] || status=1
done
report "SUPD-VM done status=$status"
/bin/debug-exit $status
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$vm/initramfs.cpio.gz"

echo "== booting $(basename "$vmlinuz") under TCG with cgroup v2 only"
results="$vm/results.txt"
: > "$results"
started=$(date +%s)
set +e
timeout 2400 qemu-system-x86_64 -accel tcg -m 2048 -smp 2 \
  -kernel "$vmlinuz" -initrd "$vm/initramfs.cpio.gz" \
  -append 'console=ttyS0 quiet panic=-1 cgroup_no_v1=all' \
  -display none -no-reboot -nic none "${disk[@]}" \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -serial stdio -serial "file:$results" < /dev/null
qemu=$?
set -e
echo "== VM results ($(( $(date +%s) - started )) s)"
cat "$results"
# Passing needs both: QEMU's exit through isa-debug-exit with value 0, and the
# guest's last line. A panic (reboot, -no-reboot: exit 0), a hang (timeout:
# 124) or a failed test (exit 3) is a failure.
if [ $qemu -ne 1 ] || ! grep -q '^SUPD-VM done status=0' "$results"; then
  echo "the cgroup v2 VM tier FAILED (qemu exit $qemu)" >&2
  exit 1
fi
echo "the cgroup v2 VM tier passed"
