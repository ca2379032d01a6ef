#!/usr/bin/env bash
# CI check of the fuzz crate; run as `bash fuzz/check.sh` from any directory.
#
# 1. Always: `cargo check` on the default (stable) toolchain. This must pass anywhere.
# 2. If a nightly toolchain and cargo-fuzz are installed, or can be installed in time:
#    build every target with `cargo +nightly fuzz build` and run each for a short
#    smoke over a scratch copy of its checked-in corpus (so the `regression-*` inputs
#    replay and nothing is written into the repository). A crash fails the script.
#    Without nightly or cargo-fuzz the smoke run is skipped, saying why, and the
#    script exits 0.
#
# SMOKE_SECONDS (default 10) sets how long each target runs.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz_dir")
cd "$root"

targets=(manifest_yaml compile_route annotation_value annotation_map path_normalize http1_head)
smoke_seconds=${SMOKE_SECONDS:-10}
started=$SECONDS

say() { printf 'fuzz: %s\n' "$*"; }

# `cargo fuzz run` creates fuzz/artifacts/<target>/ even though crash inputs go to the
# scratch directory here; remove whichever of those did not exist before, if empty.
new_dirs=()
for d in "$fuzz_dir/artifacts" "${targets[@]/#/$fuzz_dir/artifacts/}"; do
  [ -e "$d" ] || new_dirs=("$d" ${new_dirs[@]+"${new_dirs[@]}"})
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-check.XXXXXX")
keep_tmp=0
cleanup() {
  for d in ${new_dirs[@]+"${new_dirs[@]}"}; do
    rmdir "$d" 2>/dev/null || true
  done
  if [ "$keep_tmp" = 0 ]; then
    rm -rf "$tmp"
  else
    say "logs, scratch corpora and crash inputs kept in $tmp"
  fi
}
trap cleanup EXIT

# Print the end of a log, indented, after a failure.
show_log() {
  say "last ${2:-40} lines of $(basename "$1"):"
  tail -n "${2:-40}" "$1" | sed 's/^/    /'
}

# After a failed run: the panic message and libFuzzer's crash report (the input, where it
# was written), not the stack traces; the end of the log when there is no report.
show_failure() {
  if grep -q '^SUMMARY: ' "$1"; then
    say "panic message and crash report from $(basename "$1"):"
    {
      awk '/panicked at/ { on = 1 }
           on && (/^stack backtrace:/ || /^note: / || /^==[0-9]+==/) { exit }
           on' "$1"
      sed -n '/^SUMMARY: /,/^Error: /p' "$1"
    } | sed 's/^/    /'
  else
    show_log "$1" 60
  fi
}

skip() {
  say "SMOKE RUN SKIPPED: $*"
  say "only the stable type-check ran (it passed); $((SECONDS - started)) s"
  exit 0
}

# --- 1. stable type-check ---------------------------------------------------------
say "cargo check (default toolchain: $(rustc --version))"
cargo check --quiet --locked --manifest-path "$fuzz_dir/Cargo.toml"
say "type-check passed"

# --- 2. nightly smoke run ---------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
  skip "rustup is not installed, so there is no nightly toolchain to build the targets with"
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "no nightly toolchain; installing one (at most 5 minutes)"
  if ! timeout 300 rustup toolchain install nightly --profile minimal >"$tmp/rustup.log" 2>&1; then
    show_log "$tmp/rustup.log" 10
    skip "no nightly toolchain, and 'rustup toolchain install nightly' failed or took over 5 minutes"
  fi
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    skip "nightly was installed but 'rustup run nightly rustc --version' still fails"
  fi
fi
say "nightly: $(rustup run nightly rustc --version)"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  say "cargo-fuzz is missing; installing it (at most 10 minutes)"
  if ! timeout 600 cargo install cargo-fuzz --locked --quiet >"$tmp/install.log" 2>&1; then
    show_log "$tmp/install.log" 10
    skip "cargo-fuzz is missing, and 'cargo install cargo-fuzz --locked' failed or took over 10 minutes"
  fi
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    skip "cargo-fuzz was installed but 'cargo fuzz' still does not run (is ~/.cargo/bin on PATH?)"
  fi
fi
say "$(cargo +nightly fuzz --version)"

say "building ${targets[*]} (cargo +nightly fuzz build)"
build_started=$SECONDS
if ! cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" >"$tmp/build.log" 2>&1; then
  keep_tmp=1
  show_log "$tmp/build.log" 60
  say "FAILED: the fuzz targets do not build on nightly"
  exit 1
fi
say "built in $((SECONDS - build_started)) s"

failed=()
for target in "${targets[@]}"; do
  corpus="$tmp/corpus/$target"
  artifacts="$tmp/artifacts/$target"
  log="$tmp/run-$target.log"
  mkdir -p "$corpus" "$artifacts"
  cp -R "$fuzz_dir/corpus/$target/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)

  say "running $target for ${smoke_seconds} s over a scratch copy of its corpus ($seeds inputs)"
  # Crash inputs go to the scratch directory too (the last -artifact_prefix wins).
  if cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$target" "$corpus" -- \
    -max_total_time="$smoke_seconds" -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    # libFuzzer's summary: the status after the seeds ran, and at the end.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "$log" | sed 's/^/    /' || true
    say "$target: no crash"
  else
    keep_tmp=1
    failed+=("$target")
    show_failure "$log"
    for input in "$artifacts"/*; do
      [ -f "$input" ] || continue
      say "failing input $input ($(wc -c <"$input") bytes), base64:"
      base64 "$input" | head -n 200 | sed 's/^/    /' || true
      say "reproduce with: cargo +nightly fuzz run $target <that file>; record it as fuzz/README.md says"
    done
    say "$target: FAILED (a crash, or the run could not start; see above)"
  fi
done

elapsed=$((SECONDS - started))
if [ "${#failed[@]}" -gt 0 ]; then
  say "FAILED: ${failed[*]} ($elapsed s)"
  exit 1
fi
say "passed: type-check and ${smoke_seconds} s smoke runs of ${targets[*]} ($elapsed s)"
