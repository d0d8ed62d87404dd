#!/usr/bin/env bash
# Coverage-guided fuzzing of the unit parser, the drop-in merge and the
# control protocol with AFL++ (cargo-afl, stable Rust). Each target runs for
# SUPD_FUZZ_SECONDS (default 600); the test suite runs a short pass. Fails
# if any target saved a crash or a hang (an input that took over 1 s).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust
# cargo-afl builds AFL++ from source with make and a C compiler.
ensure_packages make gcc
seconds=${SUPD_FUZZ_SECONDS:-600}
targets=${SUPD_FUZZ_TARGETS:-"unit_parser dropin_merge control_protocol"}
if ! cargo afl --version >/dev/null 2>&1; then
  echo "installing cargo-afl (AFL++ for Rust) from crates.io"
  cargo install --quiet --locked cargo-afl
fi
cd fuzz
cargo afl build --quiet --release
# No terminal, no CPU pinning, and the host's core_pattern is left alone.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
out=${SUPD_FUZZ_OUT:-target/afl-out}
rm -rf "$out"
mkdir -p "$out"
corpus_of() {
  case "$1" in
    unit_parser) echo corpus/unit ;;
    dropin_merge) echo corpus/dropin ;;
    control_protocol) echo corpus/protocol ;;
  esac
}
status=0
for target in $targets; do
  log="$out/$target.log"
  if ! cargo afl fuzz -i "$(corpus_of "$target")" -o "$out/$target" -V "$seconds" -t 1000 \
      "target/release/$target" >"$log" 2>&1; then
    echo "$target: afl-fuzz failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  stats="$out/$target/default/fuzzer_stats"
  value() { sed -n "s/^$1 *: //p" "$stats"; }
  echo "$target: $(value execs_done) inputs in ${seconds} s ($(value execs_per_sec)/s), corpus $(value corpus_count), crashes $(value saved_crashes), hangs $(value saved_hangs)"
  if [ "$(value saved_crashes)" != 0 ] || [ "$(value saved_hangs)" != 0 ]; then
    echo "$target: findings in $(cd "$out/$target/default" && pwd)/{crashes,hangs}" >&2
    status=1
  fi
done
exit $status
