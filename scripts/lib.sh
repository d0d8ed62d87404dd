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

ensure_rust() {
  if command -v cargo >/dev/null 2>&1; then return; fi
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; return; }
  echo "no Rust toolchain: installing rustup from Debian and the stable toolchain"
  ensure_packages rustup gcc
  rustup default stable
  export PATH="$HOME/.cargo/bin:$PATH"
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
