#!/usr/bin/env bash
# Reports the size of the release `hearth` extension binary, stripped, in bytes and MiB, and
# the size of the layer zip built from it (Lambda's limits: 50 MB zipped per direct upload,
# 250 MB unzipped for a function and its layers).
#
#   scripts/binary-size.sh                  # build (release, cargo-lambda, via the Makefile
#                                           # target SAM uses) for x86_64, and for arm64 when
#                                           # the aarch64-unknown-linux-gnu target is installed
#   scripts/binary-size.sh BINARY [ARCH]    # report on an existing binary (ARCH: x86_64|arm64)
#
# Builds run the Makefile's layer target, so they land in $LAYER_TARGET_DIR (default
# $CARGO_TARGET_DIR/hearth-layer, i.e. target/hearth-layer): a target dir of their own, apart
# from the debug builds others run. Builds run under `nice -n 19`. A release build (lto = "fat", codegen-units = 1) of the extension takes
# ~10-20 minutes on 2 cores from scratch.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HEARTH_VENV:-$root/.venv}"
export PATH="$venv/bin:$PATH"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

# report BINARY ARCH: prints one line of sizes; strips a copy if the binary still has symbols.
report() {
  local bin="$1" arch="$2" work size stripped note="" zipsize
  work="$(mktemp -d)"
  size=$(wc -c < "$bin")
  cp "$bin" "$work/hearth"
  if readelf -S --wide "$work/hearth" 2>/dev/null | grep -q '\.symtab'; then
    # The release profile strips (strip = true); a debug or foreign binary may not be.
    local strip_tool=strip
    [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ] && strip_tool="$(command -v llvm-strip || command -v aarch64-linux-gnu-strip || true)"
    if [ -n "$strip_tool" ] && "$strip_tool" --strip-all "$work/hearth" 2>/dev/null; then
      note=" (stripped a copy: the input had symbols)"
    else
      note=" (NOT stripped: no strip tool for $arch)"
    fi
  fi
  stripped=$(wc -c < "$work/hearth")
  "$root/scripts/package-layer.sh" "$work/hearth" "$work/layer.zip" > /dev/null
  zipsize=$(wc -c < "$work/layer.zip")
  printf '%-7s binary %s bytes; stripped %s bytes = %s MiB%s; layer zip %s bytes = %s MiB\n' \
    "$arch" "$size" "$stripped" "$(mib "$stripped")" "$note" "$zipsize" "$(mib "$zipsize")"
  rm -rf "$work"
}

if [ $# -ge 1 ]; then
  [ -f "$1" ] || { echo "binary-size: $1: no such file" >&2; exit 1; }
  report "$1" "${2:-x86_64}"
  exit 0
fi

command -v cargo-lambda > /dev/null \
  || { echo "binary-size: cargo-lambda not found; run scripts/install-deploy-tools.sh cargo-lambda" >&2; exit 2; }

arches=(x86_64)
if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  arches+=(arm64)
else
  echo "binary-size: arm64 skipped: the Rust target aarch64-unknown-linux-gnu is not installed (rustup target add aarch64-unknown-linux-gnu; needs the network)" >&2
fi

for arch in "${arches[@]}"; do
  case "$arch" in
    x86_64) target=build-HearthLayerX86 ;;
    arm64) target=build-HearthLayerArm64 ;;
  esac
  out="$(mktemp -d)"
  start=$(date +%s)
  make --no-print-directory -C "$root" "$target" ARTIFACTS_DIR="$out" NICE="nice -n 19" >&2
  echo "binary-size: $arch build took $(( $(date +%s) - start )) s" >&2
  report "$out/extensions/hearth" "$arch"
  rm -rf "$out"
done
