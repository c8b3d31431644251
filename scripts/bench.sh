#!/usr/bin/env bash
# Builds the daemons and shoal-bench in release mode, then runs shoal-bench.
# Without arguments it runs the smoke scenario: a local cluster (upstream,
# tracker, supernode, agents) doing a fanout pull on embedded defaults.
#
#   scripts/bench.sh                              # = run --scenario smoke
#   scripts/bench.sh run --scenario fanout-sym    # any shoal-bench arguments
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build --release --workspace --bins
if [ "$#" -eq 0 ]; then
    set -- run --scenario smoke
fi
exec target/release/shoal-bench "$@"
