#!/usr/bin/env bash
# The Hearth demo: the example payments function and the real `hearth` extension under the
# Lambda simulator, with PostgreSQL 15 and moto (KMS, Secrets Manager), all on 127.0.0.1.
# Runs a cold invoke, warm invokes, a warm-up ping, a database password rotation and a
# shutdown, then prints latency cold vs warm, cache hits, KMS calls made and avoided, and
# pool connections created and reused. Takes well under two minutes once built.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh >/dev/null
# The extension and the function are separate binaries the demo starts under the simulator.
cargo build --quiet -p hearth-extension -p hearth-payments
cargo build --quiet -p hearth-tests --bin demo
exec target/debug/demo
