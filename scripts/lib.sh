# Shared by demo.sh and test.sh: root check and installing what is missing.

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "supd creates namespaces, mounts and cgroups: run this as root" >&2
    exit 1
  fi
}

# ensure_packages PKG... : apt-get install the Debian packages not installed.
ensure_packages() {
  missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# promtool (Prometheus' checker, for tests/metrics.rs): unpacked from
# Debian's prometheus package under target/, never installed, so no
# Prometheus server starts on this machine. Puts it on PATH.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return
  local dir="$PWD/target/promtool"
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    echo "unpacking promtool from Debian's prometheus package (not installed)"
    rm -rf "$dir" && mkdir -p "$dir"
    [ -n "$(apt-cache policy prometheus 2>/dev/null | grep Candidate)" ] || apt-get update -qq
    (cd "$dir" && apt-get download -qq prometheus 2>/dev/null) || { echo "cannot download prometheus: tests/metrics.rs will say promtool is missing" >&2; return; }
    dpkg-deb -x "$dir"/prometheus_*.deb "$dir"
  fi
  export PATH="$dir/usr/bin:$PATH"
}

# ensure_vm_kernel DIR: Debian's cloud kernel for the QEMU tiers (the
# package linux-image-cloud-amd64 depends on), unpacked in DIR, never
# installed on the host. Sets VM_VMLINUZ and VM_MODULES (its modules
# directory, lib/modules/VERSION).
ensure_vm_kernel() {
  local dir=$1
  if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
    echo "== fetching Debian's cloud kernel"
    [ -n "$(apt-cache depends linux-image-cloud-amd64 2>/dev/null)" ] || apt-get update -qq
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && apt-get download -qq "$pkg")
    dpkg-deb -x "$dir"/"$pkg"_*.deb "$dir"
    rm -f "$dir"/*.deb
  fi
  VM_VMLINUZ=$(ls "$dir"/boot/vmlinuz-* | head -n 1)
  VM_MODULES=$( (ls -d "$dir"/lib/modules/* "$dir"/usr/lib/modules/* 2>/dev/null || true) | head -n 1)
}

# unpack_module MODULES_DIR MODULE DEST_DIR: the kernel module MODULE
# (a path under kernel/, without .ko) as DEST_DIR/NAME.ko, uncompressed, for
# a guest's busybox insmod. Returns 1 if the kernel lacks it (built in).
unpack_module() {
  local src dest
  src=$( (ls "$1/kernel/$2".ko* 2>/dev/null || true) | head -n 1)
  [ -n "$src" ] || return 1
  dest="$3/$(basename "$2").ko"
  case "$src" in
    *.xz) xz -dc "$src" > "$dest" ;;
    *.zst) zstd -qdc "$src" > "$dest" ;;
    *) cp "$src" "$dest" ;;
  esac
}

# ensure_trixie_root: a Debian 13 root with systemd (debootstrap minbase,
# plus systemd as PID 1, kmod for module autoloading, e2fsprogs, which the
# package depends on, and man-db, which finds the unit's Documentation=),
# made once and kept as a tarball under target/, named by its package list.
# Sets TRIXIE_ROOT to the tarball; returns 1 without a Debian mirror.
TRIXIE_PACKAGES=systemd,systemd-sysv,kmod,e2fsprogs,man-db
ensure_trixie_root() {
  TRIXIE_ROOT="$PWD/target/tmp/debian-trixie-$(echo "$TRIXIE_PACKAGES" | md5sum | cut -c1-8).tar.zst"
  [ -s "$TRIXIE_ROOT" ] && return 0
  ensure_packages debootstrap zstd
  mkdir -p "$(dirname "$TRIXIE_ROOT")"
  local build
  build=$(mktemp -d /tmp/supd-trixie.XXXXXX)
  if ! debootstrap --variant=minbase --include="$TRIXIE_PACKAGES" \
      trixie "$build" http://deb.debian.org/debian >/dev/null 2>&1; then
    rm -rf "$build"
    return 1
  fi
  rm -rf "$build"/var/cache/apt/archives/*.deb
  tar -C "$build" -cf - . | zstd -q -T0 -o "$TRIXIE_ROOT.partial"
  mv "$TRIXIE_ROOT.partial" "$TRIXIE_ROOT"
  rm -rf "$build"
}

# The Rust supd needs (Cargo.toml's rust-version).
RUST_MINIMUM=1.85
rust_new_enough() {
  local version
  version=$(rustc --version 2>/dev/null | awk '{print $2}') || return 1
  [ -n "$version" ] && [ "$(printf '%s\n%s\n' "$RUST_MINIMUM" "$version" | sort -V | head -n 1)" = "$RUST_MINIMUM" ]
}

# A toolchain on PATH, in this order: one already there, ~/.cargo (rustup),
# Debian's rustc and cargo where they are new enough (Debian 13 and later),
# the official rustup installer (Debian 12's rustc is 1.63); else a message
# that says what to install.
ensure_rust() {
  if command -v cargo >/dev/null 2>&1 && rust_new_enough; then return; fi
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    rust_new_enough && return
  fi
  [ -n "$(apt-cache policy rustc 2>/dev/null | grep Candidate)" ] || apt-get update -qq
  local candidate
  candidate=$(apt-cache policy rustc 2>/dev/null | awk '/Candidate:/ {print $2}' | sed 's/^[0-9]*://; s/[+~-].*//')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] \
      && [ "$(printf '%s\n%s\n' "$RUST_MINIMUM" "$candidate" | sort -V | head -n 1)" = "$RUST_MINIMUM" ]; then
    echo "no Rust >= $RUST_MINIMUM: installing Debian's rustc and cargo ($candidate)"
    ensure_packages rustc cargo gcc
    rust_new_enough && return
  fi
  echo "no Rust >= $RUST_MINIMUM (Debian's is ${candidate:-none}): trying the official rustup installer"
  ensure_packages curl ca-certificates gcc
  if curl --proto '=https' --tlsv1.2 -sSf --max-time 60 https://sh.rustup.rs -o /tmp/rustup-init.sh \
      && sh /tmp/rustup-init.sh -y --profile minimal --default-toolchain stable >/dev/null; then
    export PATH="$HOME/.cargo/bin:$PATH"
    rust_new_enough && return
  fi
  echo "supd needs Rust >= $RUST_MINIMUM: install it with rustup (https://rustup.rs) or from Debian 13's rustc and cargo packages, then run this again" >&2
  exit 1
}

# supd ships as a static, non-PIE executable: every container's init is a
# fresh exec of it, and without a dynamic loader and relocations each start
# is about 0.3 ms faster and each init has ~100 kB less private memory
# (measured by scripts/bench.sh). An explicit --target keeps these flags
# off build scripts and proc macros, which must stay dynamic.
host_target() { rustc -vV | sed -n 's/^host: //p'; }
export_static_flags() {
  export RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static'
  SUPD_TARGET=$(host_target)
  SUPD_RELEASE="target/$SUPD_TARGET/release"
}
