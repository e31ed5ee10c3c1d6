#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds every binary the
# integration tests run (the `hearth` extension, the example functions), and runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# Integration tests start the real binaries from target/debug, so build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
