#!/usr/bin/env bash
# Runs every fuzz target (or those named as arguments) for a bounded time, one after another.
#
#   FUZZ_SECONDS=30 bash fuzz/run.sh                 # all targets, 30 s each (the default)
#   FUZZ_SECONDS=60 bash fuzz/run.sh frame_decoder   # one target
#
# Environment:
#   FUZZ_SECONDS    fuzzing time per target, in seconds (default 30); the build is not counted.
#   FUZZ_SANITIZER  address (default), none, ... as for `cargo fuzz --sanitizer`. Falls back to
#                   none, with a warning, if the toolchain has no AddressSanitizer runtime.
#
# Needs only a stable toolchain: cargo-fuzz needs nightly-only flags, which RUSTC_BOOTSTRAP=1
# unlocks on stable. Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) when missing.
#
# Each target starts from a temporary copy of its seed corpus (fuzz/corpus/<target>/), so the
# committed seeds are never touched; new inputs are thrown away at the end. One libFuzzer process
# at a time, in process (no -jobs/-fork: libFuzzer's -jobs=N forks N workers and sends their
# output to fuzz-N.log files instead of the console).
#
# Exit status: 0 if no target crashed, 1 otherwise. For each crash the output names the input
# libFuzzer saved (fuzz/artifacts/<target>/crash-*) and how to reproduce it.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
if ! [[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz/run.sh: FUZZ_SECONDS must be a positive number of seconds, not '$FUZZ_SECONDS'" >&2
    exit 2
fi

log() { echo "== fuzz: $*"; }

# cargo-fuzz itself.
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo-fuzz not found: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi
log "$(cargo fuzz --version), $(rustc --version)"

# AddressSanitizer needs the runtime shipped with the toolchain's standard library.
if [[ "$FUZZ_SANITIZER" == address ]]; then
    host="$(rustc -vV | sed -n 's/^host: //p')"
    if ! compgen -G "$(rustc --print sysroot)/lib/rustlib/$host/lib/librustc-*_rt.asan.a" >/dev/null; then
        log "WARNING: no AddressSanitizer runtime in this toolchain; fuzzing without a sanitizer"
        FUZZ_SANITIZER=none
    fi
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz/run.sh: no fuzz targets found (cargo fuzz list)" >&2
    exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Build every target first (one cargo invocation), so that build errors show as such and the
# fuzzing time below is spent fuzzing.
log "building ${targets[*]} (sanitizer: $FUZZ_SANITIZER)"
build_start=$SECONDS
if [[ $# -gt 0 ]]; then
    for target in "${targets[@]}"; do
        RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer "$FUZZ_SANITIZER" "$target"
    done
else
    RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer "$FUZZ_SANITIZER"
fi
log "built in $((SECONDS - build_start)) s"

failed=()
summary=()
for target in "${targets[@]}"; do
    seeds="$FUZZ_DIR/corpus/$target"
    new="$work/$target/new"
    mkdir -p "$new" "$work/$target/seeds"
    # A copy, in case libFuzzer ever writes to a corpus directory other than the first.
    if [[ -d "$seeds" ]]; then
        cp -R "$seeds/." "$work/$target/seeds/"
    else
        log "WARNING: no seed corpus for $target (expected $seeds)"
    fi
    out="$work/$target/output.log"
    log "running $target for $FUZZ_SECONDS s ($(find "$work/$target/seeds" -type f | wc -l) seeds)"
    status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$FUZZ_SANITIZER" "$target" \
        "$new" "$work/$target/seeds" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 \
        >"$out" 2>&1 || status=$?

    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n 1)"
    added="$(find "$new" -type f | wc -l)"
    if [[ $status -eq 0 ]]; then
        line="$target: ok, ${execs:-?} executions (${rate:-?}/s), $added new inputs (discarded)"
    else
        line="$target: FAILED (exit $status) after ${execs:-?} executions"
        failed+=("$target")
        echo "---- what went wrong in $target ----"
        grep -A 3 -E 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|^SUMMARY: ' "$out" \
            | head -n 40 || true
        echo "---- last lines of the $target run ----"
        tail -n 40 "$out"
        echo "---- end of $target output ----"
        # libFuzzer: "Test unit written to <path>" (crash-*, timeout-*, oom-*, leak-*).
        artifact="$(sed -n 's/.*Test unit written to //p' "$out" | tail -n 1)"
        if [[ -n "$artifact" ]]; then
            line+="; input saved as $artifact"
            line+="; reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifact)"
        else
            line+="; no input was saved (build or setup error?): see the output above"
        fi
    fi
    log "$line"
    summary+=("$line")
done

echo "== fuzz summary (${FUZZ_SECONDS} s per target, sanitizer $FUZZ_SANITIZER)"
printf '   %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== fuzz: ${#failed[@]} target(s) crashed: ${failed[*]}" >&2
    exit 1
fi
