#!/usr/bin/env bash
# Runs the generative fuzz targets (src/gateway/fuzz.rs) for SECONDS each, release build.
# `make test` runs them for 2 s each in debug; this is for longer runs by hand:
#   bash e2e/fuzz.sh 300
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${1:-60} cargo test --release --lib gateway::fuzz -- --nocapture --test-threads 1
