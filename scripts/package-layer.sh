#!/usr/bin/env bash
# Packages the Hearth extension binary as a Lambda layer zip:
#
#   extensions/            (dir, 0755)
#   extensions/hearth      (the binary, 0755)  -> /opt/extensions/hearth at run time
#   hearth/rds-ca-bundle.pem (0644, only when CA_BUNDLE is given)
#                          -> /opt/hearth/rds-ca-bundle.pem, HEARTH_DB_CA_BUNDLE's default
#
# Usage: scripts/package-layer.sh BINARY OUT.zip [CA_BUNDLE.pem]
#
# The zip is reproducible: entries in a fixed order, timestamps from SOURCE_DATE_EPOCH
# (default 1980-01-01, the earliest a zip can hold), modes set explicitly rather than taken
# from the file system (a binary copied by a CI cache may have lost its x bit).
# Needs python3 (standard library only); no zip tool.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 BINARY OUT.zip [CA_BUNDLE.pem]" >&2
  exit 2
fi
binary="$1" out="$2" ca="${3:-}"

[ -f "$binary" ] || { echo "package-layer: $binary: no such file" >&2; exit 1; }
[ -z "$ca" ] || [ -f "$ca" ] || { echo "package-layer: $ca: no such file" >&2; exit 1; }
head -c 4 "$binary" | grep -q "ELF" || { echo "package-layer: $binary is not an ELF executable" >&2; exit 1; }

python3 - "$binary" "$out" "$ca" <<'PY'
import os, sys, time, zipfile

binary, out, ca = sys.argv[1], sys.argv[2], sys.argv[3]
epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01T00:00:00Z
stamp = max(time.gmtime(epoch)[:6], (1980, 1, 1, 0, 0, 0))

def entry(name, mode):
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.create_system = 3  # Unix, so external_attr carries the mode
    info.external_attr = mode << 16
    if name.endswith("/"):
        info.external_attr |= 0x10  # MS-DOS directory flag
    else:
        info.compress_type = zipfile.ZIP_DEFLATED
    return info

tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", compresslevel=9) as z:
    z.writestr(entry("extensions/", 0o040755), b"")
    with open(binary, "rb") as f:
        z.writestr(entry("extensions/hearth", 0o100755), f.read())
    if ca:
        z.writestr(entry("hearth/", 0o040755), b"")
        with open(ca, "rb") as f:
            z.writestr(entry("hearth/rds-ca-bundle.pem", 0o100644), f.read())
os.replace(tmp, out)
PY

size=$(wc -c < "$out")
echo "package-layer: wrote $out ($size bytes) with extensions/hearth${ca:+ and hearth/rds-ca-bundle.pem}"
