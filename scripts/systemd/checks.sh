#!/bin/bash
# The systemd tier's checks, run inside the booted Debian guest by
# supd-tier.service (scripts/systemd-test.sh builds the guest). Boot 1
# installs the package and drives the service; boot 2 (the same disk)
# checks what the package enabled came up by itself, then upgrades and
# purges. Every line for the host goes to the second serial port, each
# failure with the check's name, why, and an excerpt of the journal.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
phase=$(sed -n 's/.*supd\.phase=\([0-9]*\).*/\1/p' /proc/cmdline)
tier=/root/tier
failures=0

say() { printf 'SUPD-SYSTEMD %s\n' "$*" | tee /dev/ttyS1; }
excerpt() {
  journalctl -b --no-pager -o short-monotonic -n 30 "$@" 2>&1 | sed 's/^/SUPD-SYSTEMD   | /' > /dev/ttyS1
}
# check NAME COMMAND...: the command's output is the reason it failed.
check() {
  local name=$1 why
  shift
  if why=$("$@" 2>&1); then
    say "ok $name"
  else
    failures=$((failures + 1))
    say "FAIL $name: $(printf '%s' "$why" | tail -n 8 | tr '\n' ' ')"
    excerpt -u supd.service
  fi
}
# wait_until TRIES COMMAND...: every half second; the last try's output
# stays.
wait_until() {
  local tries=$1
  shift
  for _ in $(seq "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  "$@"
}
# Each check runs in a subshell (check's command substitution): fail ends it.
fail() {
  echo "$*"
  exit 1
}

main_pid() { systemctl show -p MainPID --value supd.service; }
# NAME=PID of every unit supctl reports, sorted.
unit_pids() {
  supctl status --json | tr -d ' \n' \
    | grep -o '"name":"[^"]*","state":"[^"]*","pid":[0-9][0-9]*' \
    | sed 's/"name":"\([^"]*\)","state":"[^"]*","pid":\([0-9]*\)/\1=\2/' | sort
}
running() {
  local status unit
  status=$(supctl status --json | tr -d ' \n') || return 1
  for unit in "$@"; do
    echo "$status" | grep -q "\"name\":\"$unit\",\"state\":\"running\"" \
      || { echo "$unit is not running: $(supctl status "$unit" 2>&1)"; return 1; }
  done
}
service_cgroup() { echo "/sys/fs/cgroup$(systemctl show -p ControlGroup --value supd.service)"; }
# Nothing of supd's may stay: processes, cgroups, mounts, interfaces.
nothing_left() {
  local cgroup=/sys/fs/cgroup/system.slice/supd.service
  if [ -d "$cgroup" ]; then
    local procs
    procs=$(find "$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null)
    [ -z "$procs" ] || fail "processes left in $cgroup: $procs"
    [ -z "$(find "$cgroup" -mindepth 1 -type d -path '*containers*')" ] \
      || fail "container cgroups left: $(find "$cgroup" -mindepth 1 -type d)"
  fi
  ! grep -E ' (/run/supd|/var/lib/supd)' /proc/self/mountinfo \
    || fail "supd's mounts are left"
  local links
  links=$(ls /sys/class/net)
  [ "$links" = "$(cat "$tier/links-before")" ] || fail "interfaces left: $links"
  ! grep -l -s /var/lib/supd /sys/block/loop*/loop/backing_file || fail "loop devices left"
}

units="talker sleeper"
write_units() {
  mkdir -p /etc/supd/units
  # Output on both streams, to the journal (supd runs under journald).
  cat > /etc/supd/units/talker.yaml <<'UNIT'
description: "says something on stdout and stderr"
rootfs: /
volatile: overlay
exec: ["/bin/sh", "-c", "echo talker says hello; echo talker complains >&2; exec sleep infinity"]
restart: { policy: always }
stop: { timeout: 5s }
UNIT
  # On a bridge: an interface and nftables rules that must go again.
  cat > /etc/supd/units/sleeper.yaml <<'UNIT'
description: "sleeps on the bridge network"
rootfs: /
volatile: overlay
network: { mode: bridge }
exec: ["/bin/sleep", "infinity"]
restart: { policy: always }
stop: { timeout: 5s }
UNIT
  # supd warns about it: the priority check's warning.
  printf 'exec: [/bin/true]\nrestart: { polcy: always }\n' > /etc/supd/units/broken.yaml
}

# 1. dpkg -i under a running systemd: enabled and started by the package.
install_starts_it() {
  dpkg -i "$tier/supd-old.deb" || fail "dpkg -i failed"
  [ "$(systemctl is-enabled supd.service)" = enabled ] || fail "not enabled by the package"
  systemctl is-active --quiet supd.service || fail "not started by the package: $(systemctl status supd 2>&1)"
}
# Type=notify: `systemctl start` returns once supd sent READY=1, after its
# first reconcile, so the socket answers and every unit has a process
# without waiting.
ready_before_active() {
  systemctl stop supd.service || fail "stop failed"
  systemctl start supd.service || fail "start failed"
  local state
  state=$(systemctl show -p ActiveState,SubState --value supd.service | tr '\n' ' ')
  [ "$state" = "active running " ] || fail "state after start: $state"
  local pids
  pids=$(unit_pids) || fail "supctl status did not answer right after start"
  for unit in $units; do
    echo "$pids" | grep -q "^$unit=[1-9]" || fail "$unit has no process right after start: $pids"
  done
  [ "$(systemctl show -p Type --value supd.service)" = notify ] || fail "not Type=notify"
  # The journal in order: this start's containers, then systemd's word.
  local order
  order=$(journalctl -u supd.service -o cat --no-pager | tac | grep -m 3 -E "^talker: started container|^sleeper: started container|^Started supd.service")
  [ "$(echo "$order" | head -n 1)" = "Started supd.service - supd container supervisor." ] \
    || fail "systemd said Started before supd started its containers: $order"
}
status_summary() {
  wait_until 20 sh -c 'systemctl show -p StatusText --value supd.service | grep -q "2 running, 1 invalid"' \
    || fail "STATUS= is '$(systemctl show -p StatusText --value supd.service)'"
  systemctl status --no-pager supd.service | grep -q 'Status: "2 running, 1 invalid"' \
    || fail "systemctl status does not show it: $(systemctl status --no-pager supd.service)"
}
unit_file_clean() {
  local verify
  verify=$(systemd-analyze verify supd.service 2>&1 | grep -i supd)
  [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
  local warnings
  warnings=$(journalctl -b _PID=1 -p warning -o cat --no-pager | grep -i supd)
  [ -z "$warnings" ] || fail "systemd warned: $warnings"
}
# 2. Delegation: supd in supd.service/supervisor, each container in
# supd.service/containers/NAME.
delegated_cgroups() {
  local service
  service=$(systemctl show -p ControlGroup --value supd.service)
  grep -qx "0::$service/supervisor" "/proc/$(main_pid)/cgroup" \
    || fail "supd runs in $(cat "/proc/$(main_pid)/cgroup")"
  local entry unit pid
  for entry in $(unit_pids); do
    unit=${entry%=*}
    pid=${entry#*=}
    grep -q "^0::$service/containers/$unit\(/\|$\)" "/proc/$pid/cgroup" \
      || fail "$unit's init runs in $(cat "/proc/$pid/cgroup")"
  done
  local tree
  tree=$(systemd-cgls --no-pager -u supd.service)
  for part in supervisor containers talker sleeper "sleep infinity"; do
    echo "$tree" | grep -q -- "$part" || fail "systemd-cgls lacks $part: $tree"
  done
  local complaints
  complaints=$(journalctl -b _PID=1 -o cat --no-pager | grep -i supd | grep -i -E 'foreign|unexpected|left-over|Supervising process')
  [ -z "$complaints" ] || fail "systemd complained: $complaints"
}
# 3. The journal: container output with SUPD_UNIT and SUPD_STREAM, supd's
# own lines with priorities.
container_output_in_journal() {
  wait_until 20 sh -c 'journalctl SUPD_UNIT=talker SUPD_STREAM=stdout -o cat | grep -qx "talker says hello"' \
    || fail "no stdout record: $(journalctl SUPD_UNIT=talker -o verbose --no-pager | tail -n 30)"
  journalctl SUPD_UNIT=talker SUPD_STREAM=stderr -p err -o cat | grep -qx "talker complains" \
    || fail "no stderr record at priority err: $(journalctl SUPD_UNIT=talker -o verbose --no-pager | tail -n 30)"
  ! journalctl SUPD_UNIT=talker -p err -o cat | grep -q "says hello" || fail "stdout logged as an error"
  journalctl -t talker -o cat | grep -q "talker says hello" || fail "SYSLOG_IDENTIFIER is not the unit name"
  local logs
  logs=$(supctl logs talker) || fail "supctl logs failed: $logs"
  echo "$logs" | grep -q "talker says hello" || fail "supctl logs: $logs"
  echo "$logs" | grep -q "talker complains" || fail "supctl logs: $logs"
}
supd_priorities() {
  journalctl -u supd.service -p warning -o cat --no-pager | grep -q "broken.yaml" \
    || fail "the warning about broken.yaml is not at warning or worse: $(journalctl -u supd -o verbose --no-pager | grep -B3 -A12 broken.yaml | head -n 40)"
  journalctl -u supd.service -p info -o cat --no-pager | grep -q "starting; units from" \
    || fail "supd's start line is missing"
  ! journalctl -u supd.service -p warning -o cat --no-pager | grep -q "starting; units from" \
    || fail "info lines show up under -p warning"
}
# 5. reload: RELOADING=1 ... READY=1; nothing restarts.
reload_rereads() {
  local main before
  main=$(main_pid)
  before=$(unit_pids)
  rm /etc/supd/units/broken.yaml
  systemctl reload supd.service || fail "reload failed"
  [ "$(main_pid)" = "$main" ] || fail "reload replaced supd"
  [ "$(systemctl show -p SubState --value supd.service)" = running ] || fail "not running after reload"
  [ "$(unit_pids)" = "$before" ] || fail "reload restarted containers: $before -> $(unit_pids)"
  wait_until 20 sh -c 'systemctl show -p StatusText --value supd.service | grep -qx "2 running"' \
    || fail "STATUS= after reload: $(systemctl show -p StatusText --value supd.service)"
  journalctl -b _PID=1 -o cat | grep -q "Reloaded supd.service" || fail "systemd logged no reload"
}
# supd restarted by systemd, or the same one answering, with every unit up.
restarted_by_systemd() {
  local old=$1
  wait_until 240 sh -c "[ \"\$(systemctl show -p MainPID --value supd.service)\" != $old ] && [ \"\$(systemctl show -p MainPID --value supd.service)\" != 0 ] && systemctl is-active --quiet supd.service" \
    || fail "systemd did not restart supd: $(systemctl status --no-pager supd.service)"
  wait_until 60 running $units || fail "not every unit runs again"
}
# 4. The watchdog (WatchdogSec=10s from the tier's drop-in): a frozen supd
# is killed and restarted; its containers are adopted.
watchdog_restarts() {
  local old before
  old=$(main_pid)
  before=$(unit_pids)
  kill -STOP "$old"
  restarted_by_systemd "$old"
  journalctl -u supd.service -o cat | grep -q "Watchdog timeout" || fail "no watchdog timeout in the journal"
  [ "$(unit_pids)" = "$before" ] || fail "containers not adopted: $before -> $(unit_pids)"
  rm -f /core /core.*
}
# A crash of supd alone (kill -9 of the main process): adopted.
kill_main_adopts() {
  local old before
  old=$(main_pid)
  before=$(unit_pids)
  systemctl kill --kill-whom=main -s KILL supd.service
  restarted_by_systemd "$old"
  [ "$(unit_pids)" = "$before" ] || fail "containers not adopted: $before -> $(unit_pids)"
}
# `systemctl kill` signals every process of the service, the containers in
# its delegated cgroups too: they die with supd, and the restarted supd
# starts them again by their restart policy (README, live restore).
kill_all_restarts_them() {
  local old before after
  old=$(main_pid)
  before=$(unit_pids)
  systemctl kill -s KILL supd.service
  restarted_by_systemd "$old"
  after=$(unit_pids)
  for entry in $before; do
    ! echo "$after" | grep -qx "$entry" || fail "$entry survived systemctl kill"
  done
  supctl status --json | tr -d ' \n' | grep -q '"name":"talker","state":"running","pid":[0-9]*,"since":"[^"]*","restarts":[1-9]' \
    || fail "talker's restart is not counted: $(supctl status talker)"
}
# 5. stop: every container stopped within its timeout, nothing left.
stop_leaves_nothing() {
  local since
  since=$(date +%s)
  systemctl stop supd.service || fail "stop failed"
  [ "$(systemctl show -p Result --value supd.service)" = success ] \
    || fail "stop result: $(systemctl show -p Result --value supd.service)"
  ! journalctl -u supd.service --since "@$since" -o cat | grep -E "killing it|SIGKILL|timed out" \
    || fail "something was killed"
  nothing_left
}
# What systemd brought up at boot: the enabled service, the unit file left
# in /etc/supd/units, and no failed unit.
came_up_at_boot() {
  local state
  state=$(systemctl is-system-running --wait)
  [ "$state" = running ] || fail "is-system-running: $state; failed: $(systemctl --failed --no-legend)"
  [ "$(systemctl is-enabled supd.service)" = enabled ] || fail "supd is not enabled"
  wait_until 60 running at-boot $units || fail "not every unit runs"
  wait_until 20 sh -c 'journalctl -b SUPD_UNIT=at-boot -o cat | grep -qx "up at boot"' || fail "no output of at-boot"
}
# The last boot's shutdown, from its "shutting down" line on.
previous_shutdown_clean() {
  local shutdown
  shutdown=$(journalctl -b -1 -u supd.service -o cat --no-pager \
    | awk '/^shutting down: stopping all containers/ {kept = ""} {kept = kept $0 "\n"} END {printf "%s", kept}')
  echo "$shutdown" | grep -q "^shutting down: stopping all containers" || fail "no shutdown of supd in the last boot"
  echo "$shutdown" | grep -q "^all containers stopped, exiting" || fail "supd did not finish stopping: $shutdown"
  ! echo "$shutdown" | grep -E "killing it|SIGKILL|timed out" || fail "something was killed at shutdown"
}
# 6. An upgrade while containers run: the same supd process executes the new
# binary (postinst: supctl daemon-reexec), no container restarts.
upgrade_keeps_containers() {
  local main before old_version new_version
  main=$(main_pid)
  before=$(unit_pids)
  old_version=$(supd --version)
  dpkg -i "$tier/supd-new.deb" || fail "dpkg -i of the new package failed"
  new_version=$(supd --version)
  [ "$new_version" != "$old_version" ] || fail "supd --version is still $old_version"
  [ "$(main_pid)" = "$main" ] || fail "supd was restarted ($main -> $(main_pid))"
  [ "$(readlink "/proc/$main/exe")" = /usr/bin/supd ] || fail "supd runs $(readlink "/proc/$main/exe")"
  wait_until 20 sh -c "journalctl -u supd.service -o cat | grep -q '^${new_version} starting'" \
    || fail "no start line of $new_version"
  [ "$(unit_pids)" = "$before" ] || fail "containers restarted: $before -> $(unit_pids)"
  running at-boot $units
}
purge_leaves_nothing() {
  dpkg --purge supd || fail "purge failed"
  ! systemctl cat supd.service >/dev/null 2>&1 || fail "the unit is still known"
  for path in /usr/bin/supd /usr/bin/supctl /var/lib/supd /var/log/supd /run/supd \
      /etc/systemd/system/multi-user.target.wants/supd.service /etc/supd/units/README; do
    [ ! -e "$path" ] || fail "purge left $path"
  done
  ! getent group supd || fail "purge left the supd group"
  nothing_left
}

say "boot $phase: checks started"
if ! timeout 300 systemctl is-system-running --wait >/dev/null; then
  say "the boot did not settle: $(systemctl is-system-running); jobs: $(systemctl list-jobs --no-legend | tr '\n' ';')"
fi
case "$phase" in
  1)
    say "phase 1: $(uname -r), systemd $(systemctl --version | head -n 1 | awk '{print $2}')"
    ls /sys/class/net > "$tier/links-before"
    write_units
    check "dpkg -i enables and starts supd" install_starts_it
    check "systemctl start returns after READY=1" ready_before_active
    check "STATUS= in systemctl status" status_summary
    check "no warning about the unit file" unit_file_clean
    check "containers in the delegated cgroup, shown by systemd-cgls" delegated_cgroups
    check "container output in the journal, supctl logs" container_output_in_journal
    check "supd's lines carry priorities" supd_priorities
    check "systemctl reload re-reads, restarts nothing" reload_rereads
    check "watchdog restarts a frozen supd, containers adopted" watchdog_restarts
    check "kill of the main process: restarted, containers adopted" kill_main_adopts
    check "systemctl kill -s KILL: restarted, containers started again" kill_all_restarts_them
    check "systemctl stop leaves nothing" stop_leaves_nothing
    # Boot 2 finds this and the enabled service; shutdown stops supd.
    printf 'rootfs: /\nvolatile: overlay\nexec: ["/bin/sh", "-c", "echo up at boot; exec sleep infinity"]\n' \
      > /etc/supd/units/at-boot.yaml
    systemctl start supd.service
    say "phase 1 done failures=$failures"
    echo "$failures" > "$tier/failures-1"
    systemctl poweroff
    ;;
  2)
    say "phase 2"
    check "a unit in /etc/supd/units runs after boot, system running" came_up_at_boot
    check "the last shutdown stopped every container" previous_shutdown_clean
    check "dpkg -i of a newer package: same supd, no container restarted" upgrade_keeps_containers
    check "dpkg --purge leaves nothing" purge_leaves_nothing
    total=$((failures + $(cat "$tier/failures-1" 2>/dev/null || echo 1)))
    say "done status=$([ "$total" = 0 ] && echo 0 || echo 1)"
    sync
    "$tier/debug-exit" "$([ "$total" = 0 ] && echo 0 || echo 1)"
    systemctl poweroff
    ;;
  *)
    say "FAIL phase: no supd.phase= on the kernel command line"
    systemctl poweroff
    ;;
esac
