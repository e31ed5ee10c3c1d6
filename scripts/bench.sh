#!/usr/bin/env bash
# Hearth's benchmark suite, one command. Installs what the suite needs if missing (Debian:
# wrk, pgbouncer, nginx-light; AWS's Secrets Manager Agent 2.1.0 by `cargo install --locked`;
# plus the test dependencies: PostgreSQL 15 and moto), builds
#   - the shipped `hearth` (release profile: fat LTO, size-first with the hot path at -O3),
#   - the `release-o3` variant of it (opt-level 3 everywhere, symbols kept) for comparison,
#   - the benchmark harness and the probe function (the `optimized` profile: no LTO),
# starts the local peers on loopback (moto, a throwaway Postgres, PgBouncer in transaction
# mode, nginx, AWS's agent), runs every benchmark side by side with its baseline, and writes
# bench/results/report.md and bench/results/report.json. Exits non-zero when a comparison
# could not run. From scratch on 2 cores: the agent ~5 min, each LTO build 10-20 min; the run
# itself about 6 minutes.
#
#   scripts/bench.sh [--quick] [--only-db | --only-esdk] [--out DIR]
#
#   --quick      shorter windows and smaller counts (a smoke run; figures are rough)
#   --only-db    only the database comparisons (RLS query, and what tenant isolation costs)
#   --only-esdk  only the in-process ESDK comparison (signed 0x0578 vs 0x0478, 1 KiB)
#   --out DIR    where the report goes (default bench/results)
#
# Environment: CARGO_TARGET_DIR (default: target/); NICE, a command prefix for the builds
# (e.g. NICE="nice -n 10"); HEARTH_BENCH_AGENT, an installed aws_secretsmanager_agent to use
# instead of installing one; HEARTH_BENCH_EXTRA_VARIANTS, more "name=binary" pairs (;-separated)
# to measure beside the two variants built here (e.g. a build of an earlier commit).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/install-test-deps.sh
need_apt=()
command -v wrk > /dev/null || need_apt+=(wrk)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bench: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null
fi

target="${CARGO_TARGET_DIR:-$root/target}"
if [ -z "${HEARTH_BENCH_AGENT:-}" ]; then
  tools="$target/bench-tools"
  HEARTH_BENCH_AGENT="$tools/bin/aws_secretsmanager_agent"
  if [ ! -x "$HEARTH_BENCH_AGENT" ]; then
    echo "bench: installing AWS's Secrets Manager Agent 2.1.0 (cargo install --locked)"
    ${NICE:-} cargo install --quiet --locked aws_secretsmanager_agent --version 2.1.0 \
      --root "$tools" --target-dir "$target/bench-tools-build"
  fi
fi
export HEARTH_BENCH_AGENT

start=$(date +%s)
# The extension alone per invocation: its features are not unified with the harness's
# (which pulls AWS's caching library and the SDKs' default features).
${NICE:-} cargo build --locked --release -p hearth-extension --bin hearth
${NICE:-} cargo build --locked --profile release-o3 -p hearth-extension --bin hearth
${NICE:-} cargo build --locked --profile optimized -p hearth-tests --bin probe-function -p hearth-bench --bin hearth-bench
echo "bench: builds took $(( $(date +%s) - start )) s" >&2
export HEARTH_BENCH_HEARTH_BIN="$target/release/hearth"
export HEARTH_BENCH_VARIANTS="release: opt-level z, hot-path crates at 3 (shipped)=$target/release/hearth;release-o3: opt-level 3 everywhere=$target/release-o3/hearth${HEARTH_BENCH_EXTRA_VARIANTS:+;$HEARTH_BENCH_EXTRA_VARIANTS}"
exec "$target/optimized/hearth-bench" "$@"
