#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time budget each.
#
# Usage: scripts/fuzz.sh [SECONDS [TARGET...]]
#        (default: 60 seconds for each target of `cargo fuzz list`)
#
# cargo fuzz needs a nightly compiler. An installed nightly toolchain is
# used when there is one; otherwise the stable compiler is asked to accept
# nightly flags with RUSTC_BOOTSTRAP=1 (no toolchain can be downloaded here).
# cargo-fuzz itself is installed from crates.io when it is missing.
#
# Every allocation over 64 MB counts as a failure (-malloc_limit_mb), so a
# hostile length that makes a decoder allocate is caught, not just a panic.
# Findings land in fuzz/artifacts/<target>/; the corpus grows in
# fuzz/corpus/<target>/ (both git-ignored), each run's libFuzzer output in
# fuzz/target/fuzz-logs/<target>.log. Ends with one summary line per target
# (executions, corpus size, outcome), as recorded in docs/SECURITY.md.
# Exits non-zero on a finding.
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [[ "$secs" -eq 0 ]]; then
    echo "usage: $0 [SECONDS [TARGET...]]   (a positive whole number of seconds per target)" >&2
    exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))

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

# A few valid inputs to start from, so that libFuzzer need not first
# discover the layouts. Frame targets read: a count byte k, k chunk sizes,
# then the stream of frames (4-byte big-endian length, bincode body); see
# fuzz/src/lib.rs. `rep B N` is N bytes B.
seed() {
    local dir="corpus/$1" name="$2"
    shift 2
    mkdir -p "$dir"
    [[ -e "$dir/$name" ]] || { printf '%b' "$@" >"$dir/$name"; }
}
rep() { printf "\\\\x$1%.0s" $(seq "$2"); }
hex64="$(printf 'ab%.0s' {1..32})"
digest="sha256:$hex64"
seed frame_decoder seed-have '\x00' '\x00\x00\x00\x02' '\x01\x05'
seed frame_decoder seed-bits-chunked '\x02\x01\x03' '\x00\x00\x00\x04' '\x02\x03\x01\x05'
seed frame_decoder seed-piece-map '\x00' '\x00\x00\x00\x64' '\x03' "$(rep 11 32)" \
    '\x05\x04\x02' "$(rep 22 64)"
seed frame_decoder seed-names '\x00' '\x00\x00\x00\x0f' '\x04\x07library\x01x\x00\x02v1'
seed wire_piece request '\x00' '\x00\x00\x00\x21' "$(rep 11 32)" '\x03'
seed wire_piece responses '\x01\x03' '\x00\x00\x00\x06' '\x00\xfc\x00\x00\x10\x00' \
    '\x00\x00\x00\x01\x01' '\x00\x00\x00\x01\x02' '\x00\x00\x00\x02\x03\x01'
seed wire_have sequence '\x00' '\x00\x00\x00\x25' '\x00' "$(rep 22 32)" '\x0a\x02\xff\x03' \
    '\x00\x00\x00\x22' '\x01' "$(rep 22 32)" '\x03' '\x00\x00\x00\x21' '\x02' "$(rep 22 32)"
seed piece_map frame '\x00' '\x00\x00\x00\x63' "$(rep 11 32)" '\x05\x04\x02' "$(rep 22 64)"
seed piece_map json "{\"digest\":\"$digest\",\"size\":5,\"piece_size\":4,\"pieces\":[\"$digest\",\"$digest\"]}"
seed piece_map bitfield-json '{"len":10,"bits":[255,3]}'
seed names digest "$digest"
seed names repo 'library/ubuntu-minimal_x.y'
seed names tag 'v1.0-rc_2'
seed tracker_json announce "{\"blob\":\"$digest\",\"upstream\":\"docker.io\",\"repo\":\"library/app\",\"peer\":7,\"addr\":\"127.0.0.1:1\",\"pieces\":{\"len\":10,\"bits\":[255,3]},\"upload_load\":5,\"labels\":{\"zone\":\"a\"},\"seed\":false,\"stopped\":false}"
seed tracker_json reply '{"peers":[{"peer":1,"addr":"127.0.0.1:1","seed":true}],"interval_ms":30000}'
seed tracker_json seed "{\"upstream\":\"docker.io\",\"repo\":\"library/app\",\"digest\":\"$digest\"}"
seed tracker_json swarm "{\"blob\":\"$digest\",\"upstream\":null,\"repo\":\"a/b\",\"peers\":[{\"peer\":1,\"pieces\":3,\"total\":9}]}"
seed http_auth header '\x00\x00\x00\x00\x00\x65\x00\x00' "Shoal ts=1700000000,sig=$hex64"
seed http_auth request '\x00\x00\x00\x00\x00\x65\x00\x00' 'POST /api/v1/announce?x=1\x00{"a":1}'
seed registry_http range '\x00\x00\x10\x00\x00\x00\x00\x00' 'bytes=100-199'
seed registry_http suffix '\x00\x00\x10\x00\x00\x00\x00\x00' 'bytes=-5'
seed registry_http blob '\x00\x00\x00\x00\x00\x00\x00\x00' "/v2/library/app/blobs/$digest"
seed registry_http manifest '\x00\x00\x00\x00\x00\x00\x00\x00' '/v2/a/b/c/manifests/latest'

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
# Build every target once, then run the binaries: `cargo fuzz run` would
# rebuild before each target whenever the daemons' sources change.
cargo "${toolchain[@]}" fuzz build >&2
host="$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')"
bin_dir="target/$host/release"
logs="target/fuzz-logs"
mkdir -p "$logs"
status=0
summary=()
for target in "${targets[@]}"; do
    echo "fuzz.sh: $target for ${secs}s" >&2
    mkdir -p "corpus/$target" "artifacts/$target"
    outcome=ok
    if ! "$bin_dir/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$secs" -malloc_limit_mb=64 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 >"$logs/$target.log" 2>&1; then
        echo "fuzz.sh: $target FAILED; see fuzz/artifacts/$target/ and $logs/$target.log" >&2
        tail -n 40 "$logs/$target.log" >&2
        outcome=FAILED
        status=1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$target.log" | tail -1 | grep -o '[0-9]*$' || true)"
    corpus="$(find "corpus/$target" -type f | wc -l)"
    summary+=("$(printf '%-14s %4ss  execs=%-10s corpus=%-6s %s' "$target" "$secs" "${execs:-?}" "$corpus" "$outcome")")
done
echo "fuzz.sh: summary" >&2
printf '  %s\n' "${summary[@]}" >&2
exit "$status"
