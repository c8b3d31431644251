#!/usr/bin/env bash
# Everything CI checks, in the order a developer wants to see failures:
# formatting, lints, the daemons' build, then all tests (unit, property and
# the end-to-end tests with real docker, containerd, skopeo and a real
# registry on loopback).
#
# On a fresh machine it first installs the end-to-end tools from Debian.
# Environment: RUST_TEST_THREADS (default 2: the end-to-end tests start many
# processes; the heaviest ones also take a lock so only one runs at a time).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Debian package that provides each command the end-to-end tests run.
declare -A package_of=(
    [dockerd]=docker.io
    [containerd]=containerd
    [ctr]=containerd
    [skopeo]=skopeo
    [docker-registry]=docker-registry
    [aria2c]=aria2
    [opentracker]=opentracker
    [mktorrent]=mktorrent
)
missing=()
for cmd in "${!package_of[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing end-to-end tools (missing: ${missing[*]})"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    # Keep the packages' maintainer scripts from starting system services
    # (a system dockerd with iptables); the tests start private daemons.
    policy_rc_d=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_rc_d=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy_rc_d" >/dev/null
        "${sudo[@]}" chmod +x "$policy_rc_d"
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        docker.io containerd skopeo docker-registry aria2 opentracker mktorrent
    if [ -n "$policy_rc_d" ]; then
        "${sudo[@]}" rm -f "$policy_rc_d"
    fi
fi

echo "== cargo fmt"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo build (daemons for the end-to-end tests)"
cargo build --workspace --bins

echo "== cargo test"
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --workspace
