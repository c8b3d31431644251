#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time budget each.
#
# Usage: scripts/fuzz.sh [SECONDS]     (default: 60 seconds per target)
#
# cargo fuzz needs a nightly compiler. An installed nightly toolchain is
# used when there is one; otherwise the stable compiler is asked to accept
# nightly flags with RUSTC_BOOTSTRAP=1 (no toolchain can be downloaded here).
# cargo-fuzz itself is installed from crates.io when it is missing.
#
# Every allocation over 64 MB counts as a failure (-malloc_limit_mb), so a
# hostile length that makes a decoder allocate is caught, not just a panic.
# Findings land in fuzz/artifacts/<target>/; the corpus grows in
# fuzz/corpus/<target>/ (both git-ignored). Exits non-zero on a finding.
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [[ "$secs" -eq 0 ]]; then
    echo "usage: $0 [SECONDS]   (a positive whole number of seconds per target)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; installing it from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
    echo "fuzz.sh: using $(rustup run nightly rustc --version)" >&2
else
    export RUSTC_BOOTSTRAP=1
    echo "fuzz.sh: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1" >&2
fi

# A few valid frames to start from, so that libFuzzer need not first
# discover the frame layout. Each input is: a count byte k, k chunk sizes,
# then the stream (see fuzz_targets/frame_decoder.rs).
seed() {
    local dir="corpus/$1" name="$2"
    shift 2
    mkdir -p "$dir"
    [[ -e "$dir/$name" ]] || { printf '%b' "$@" >"$dir/$name"; }
}
seed frame_decoder seed-have '\x00' '\x00\x00\x00\x02' '\x01\x05'
seed frame_decoder seed-bits-chunked '\x02\x01\x03' '\x00\x00\x00\x04' '\x02\x03\x01\x05'
seed frame_decoder seed-piece-map '\x00' '\x00\x00\x00\x64' '\x03' "$(printf '\\x11%.0s' {1..32})" \
    '\x05\x04\x02' "$(printf '\\x22%.0s' {1..64})"
seed frame_decoder seed-names '\x00' '\x00\x00\x00\x0f' '\x04\x07library\x01x\x00\x02v1'

status=0
for target in $(cargo "${toolchain[@]}" fuzz list); do
    echo "fuzz.sh: $target for ${secs}s" >&2
    mkdir -p "corpus/$target"
    if ! cargo "${toolchain[@]}" fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$secs" -malloc_limit_mb=64 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1; then
        echo "fuzz.sh: $target FAILED; see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
