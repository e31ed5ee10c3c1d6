#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds every binary the
# integration tests run (the `hearth` extension, the example functions), and runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# Integration tests start the real binaries from target/debug, so build them first.
cargo build --workspace --bins --locked
# Then `hearth` alone, as it ships: a workspace build unifies its dependencies' features with
# the other members' (the benchmark's AWS caching library turns on the SDKs' default
# features), and the tests must run the extension's own feature set.
cargo build -p hearth-extension --bin hearth --locked
cargo test --workspace --locked "$@"
