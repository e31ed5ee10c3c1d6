#!/usr/bin/env bash
# The Hearth demo: the example payments function and the real `hearth` extension under the
# Lambda simulator, with PostgreSQL 15 and moto (KMS, Secrets Manager), all on 127.0.0.1.
# Runs a cold invoke, warm invokes, a warm-up ping, a database password rotation and a
# shutdown, then prints latency cold vs warm (and, for warm invokes, the function's handler
# time, each Hearth call timed inside the function, and the simulator/runtime share), cache
# hits, KMS calls made and avoided, and pool connections created and reused.
#
# Everything is built with the workspace's `optimized` profile (release code generation,
# no LTO, 16 codegen units): a debug build's warm latency is debug-build overhead, not what
# Hearth costs. The first build takes several minutes on a small machine (see the README);
# after that the run itself takes well under two minutes. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh >/dev/null
target="${CARGO_TARGET_DIR:-target}"
# The extension and the function are separate binaries the demo starts under the simulator;
# it finds them next to itself, in $target/optimized.
cargo build --quiet --locked --profile optimized -p hearth-extension -p hearth-payments
cargo build --quiet --locked --profile optimized -p hearth-tests --bin demo
exec "$target/optimized/demo"
