#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg, checks the installed files without
# systemctl, runs the installed binaries once, and purges the package again,
# which must leave nothing: no state, logs, runtime files or group.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_packages man-db
deb=$(bash scripts/package.sh)
echo "== dpkg -i $deb"
already=$(dpkg-query -W -f='${Status}' supd 2>/dev/null | grep 'install ok installed' || true)
dpkg -i "$deb" >/dev/null
fail() { echo "package check failed: $*" >&2; exit 1; }
unitdir=$(dpkg -L supd | grep -m1 '/systemd/system/supd.service$') || fail "supd.service not installed"
for file in /usr/bin/supd /usr/bin/supctl /etc/supd/units/README \
    /usr/share/man/man8/supd.8.gz /usr/share/man/man1/supctl.1.gz \
    /usr/share/man/man1/supctl-exec.1.gz /usr/share/man/man5/supd.unit.5.gz \
    /usr/share/bash-completion/completions/supctl \
    /usr/share/zsh/vendor-completions/_supctl \
    /usr/share/fish/vendor_completions.d/supctl.fish; do
  [ -e "$file" ] || fail "$file missing"
done
grep -q '^Type=notify' "$unitdir" || fail "supd.service is not Type=notify"
grep -q '^Delegate=yes' "$unitdir" || fail "supd.service does not delegate"
# Enabled the Debian way (deb-systemd-helper symlink), without systemctl.
[ -L /etc/systemd/system/multi-user.target.wants/supd.service ] || fail "supd.service not enabled"
getent group supd >/dev/null || fail "no supd group"
man -w supd.unit >/dev/null || fail "man supd.unit not found"
/usr/bin/supd --version | grep -q "^supd " || fail "supd --version"
/usr/bin/supctl --help | grep -q "exec" || fail "supctl --help"
# The installed daemon runs: an empty unit directory, a private network.
tmp=$(mktemp -d)
unshare -n /usr/bin/supd --units-dir "$tmp/units" --state-dir "$tmp/state" \
  --runtime-dir "$tmp/run" --log-dir "$tmp/log" --socket "$tmp/supd.sock" \
  --cgroup-parent "supd-package-$$" 2>"$tmp/log.txt" &
daemon=$!
for _ in $(seq 100); do [ -S "$tmp/supd.sock" ] && break; sleep 0.1; done
/usr/bin/supctl --socket "$tmp/supd.sock" status >/dev/null || fail "installed supd does not answer: $(cat "$tmp/log.txt")"
kill -TERM $daemon
wait $daemon || fail "installed supd did not exit cleanly"
rm -rf "$tmp"
if [ -z "$already" ]; then
  # What a used installation has (systemd's StateDirectory= and friends
  # make these), unless this machine has them for another reason.
  made=()
  for dir in /var/lib/supd /var/log/supd /run/supd; do
    if [ ! -e "$dir" ]; then
      mkdir -p "$dir" && touch "$dir/left-by-a-run" && made+=("$dir")
    fi
  done
  echo "== dpkg --purge supd"
  dpkg --purge supd >/dev/null
  [ ! -e /usr/bin/supd ] || fail "purge left /usr/bin/supd"
  for dir in "${made[@]}"; do
    [ ! -e "$dir" ] || fail "purge left $dir"
  done
  if getent group supd >/dev/null; then fail "purge left the supd group"; fi
fi
echo "package OK: $deb"
