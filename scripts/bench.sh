#!/usr/bin/env bash
# Hearth's benchmark suite, one command. Builds the `hearth` extension, the probe function and
# the benchmark binary in release mode (the workspace's release profile: fat LTO, one codegen
# unit; 10-20 minutes from scratch on 2 cores), installs what the suite needs if missing
# (Debian: wrk, pgbouncer, plus the test dependencies: PostgreSQL 15 and moto), starts the
# local peers on loopback (moto, a throwaway Postgres, PgBouncer in transaction mode), runs
# every benchmark side by side with its baseline, and writes bench/results/report.md and
# bench/results/report.json. Exits non-zero when a comparison could not run.
#
#   scripts/bench.sh [--quick] [--only-db | --only-esdk] [--out DIR]
#
#   --quick      smaller counts and shorter windows (a smoke run; figures are rough)
#   --only-db    only the database comparisons (RLS query, and what tenant isolation costs)
#   --only-esdk  only the in-process ESDK comparison (signed 0x0578 vs 0x0478, 1 KiB)
#   --out DIR    where the report goes (default bench/results)
#
# Environment: CARGO_TARGET_DIR (default: cargo's, target/); NICE, a command prefix for the
# build (e.g. NICE="nice -n 10"). Takes about 3 minutes once built.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/install-test-deps.sh
need_apt=()
command -v wrk > /dev/null || need_apt+=(wrk)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bench: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null
fi

target="${CARGO_TARGET_DIR:-$root/target}"
start=$(date +%s)
${NICE:-} cargo build --release --bin hearth --bin probe-function --bin hearth-bench
echo "bench: release build took $(( $(date +%s) - start )) s" >&2
exec "$target/release/hearth-bench" "$@"
