#!/usr/bin/env bash
# Verifies a Hearth layer zip (from scripts/package-layer.sh or `sam build`'s layer dir zipped):
#   - extensions/hearth exists, is a regular file (not a link), mode has u+x (0755 expected);
#   - it is a 64-bit little-endian ELF executable for the expected architecture
#     (x86_64: EM_X86_64 = 62; arm64: EM_AARCH64 = 183) and, if dynamically linked, uses
#     the standard glibc loader the Lambda OS-only runtimes have;
#   - no other entries than extensions/, hearth/ and hearth/rds-ca-bundle.pem (a PEM), no
#     absolute or ".." paths.
#
#   - with --max-glibc X.Y: no symbol version newer than GLIBC_X.Y is required (2.26 for
#     the Amazon Linux 2 runtimes, 2.34 for Amazon Linux 2023). Off by default: a debug
#     binary built by plain cargo on a newer distribution needs a newer glibc.
#
# Usage: scripts/check-layer.sh LAYER.zip [x86_64|arm64] [--max-glibc X.Y]   (default x86_64)
# Exits 0 when all checks pass, 1 with one line per problem otherwise.
set -euo pipefail

usage() { echo "usage: $0 LAYER.zip [x86_64|arm64] [--max-glibc X.Y]" >&2; exit 2; }
zip="" arch=x86_64 max_glibc=""
while [ $# -gt 0 ]; do
  case "$1" in
    --max-glibc) [ $# -ge 2 ] || usage; max_glibc="$2"; shift 2 ;;
    x86_64|amd64) arch=x86_64; shift ;;
    arm64|aarch64) arch=arm64; shift ;;
    -*) usage ;;
    *) if [ -z "$zip" ]; then zip="$1"; shift; else echo "check-layer: unknown architecture '$1' (accepted: x86_64, arm64)" >&2; exit 2; fi ;;
  esac
done
[ -n "$zip" ] || usage
[[ -z "$max_glibc" || "$max_glibc" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "check-layer: --max-glibc wants X.Y, e.g. 2.26" >&2; exit 2; }
[ -f "$zip" ] || { echo "check-layer: $zip: no such file" >&2; exit 1; }

python3 - "$zip" "$arch" "$max_glibc" <<'PY'
import re, stat, struct, sys, zipfile

path, arch, max_glibc = sys.argv[1], sys.argv[2], sys.argv[3]


def glibc_versions(elf):
    """Version names (e.g. GLIBC_2.28) the ELF requires, from its SHT_GNU_verneed section."""
    e_shoff, = struct.unpack_from("<Q", elf, 40)
    e_shentsize, e_shnum = struct.unpack_from("<HH", elf, 58)
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        sh_type, = struct.unpack_from("<I", elf, off + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", elf, off + 24)
        sh_link, sh_info = struct.unpack_from("<II", elf, off + 40)
        sections.append((sh_type, sh_offset, sh_size, sh_link, sh_info))
    names = set()
    for sh_type, sh_offset, _size, sh_link, count in sections:
        if sh_type != 0x6FFFFFFE:  # SHT_GNU_verneed
            continue
        strtab = sections[sh_link][1]
        off = sh_offset
        for _ in range(count):
            _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", elf, off)
            a = off + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", elf, a)
                end = elf.index(b"\0", strtab + name)
                names.add(elf[strtab + name:end].decode("ascii", "replace"))
                a += anext
            off += nxt
    return names


def vkey(v):
    return tuple(int(x) for x in v.split("."))
EXPECT = {
    "x86_64": (62, "/lib64/ld-linux-x86-64.so.2"),
    "arm64": (183, "/lib/ld-linux-aarch64.so.1"),
}
machine_names = {62: "x86_64", 183: "aarch64 (arm64)", 3: "i386", 40: "arm (32-bit)"}
want_machine, want_interp = EXPECT[arch]
ALLOWED = {"extensions/", "extensions/hearth", "hearth/", "hearth/rds-ca-bundle.pem"}
problems = []

try:
    z = zipfile.ZipFile(path)
except zipfile.BadZipFile as e:
    print(f"check-layer: {path}: not a zip file ({e})")
    sys.exit(1)

bad = z.testzip()
if bad:
    problems.append(f"{bad}: CRC check failed")

names = z.namelist()
for n in names:
    if n.startswith("/") or ".." in n.split("/"):
        problems.append(f"{n}: unsafe path")
    elif n not in ALLOWED:
        problems.append(f"{n}: unexpected entry (a layer holds extensions/hearth and optionally hearth/rds-ca-bundle.pem)")

if "extensions/hearth" not in names:
    problems.append("extensions/hearth: missing (Lambda runs external extensions from /opt/extensions/)")
else:
    info = z.getinfo("extensions/hearth")
    mode = info.external_attr >> 16
    if info.create_system != 3 or mode == 0:
        problems.append("extensions/hearth: no Unix mode recorded (Lambda would unpack it without the execute bit)")
    else:
        if not stat.S_ISREG(mode):
            problems.append(f"extensions/hearth: not a regular file (mode {oct(mode)})")
        if stat.S_IMODE(mode) & 0o111 != 0o111:
            problems.append(f"extensions/hearth: not executable by all (mode {oct(stat.S_IMODE(mode))}, want 0755)")
        elif stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o755:
            print(f"check-layer: note: extensions/hearth mode {oct(stat.S_IMODE(mode))} (0755 expected)")
    data = z.read("extensions/hearth")
    if data[:4] != b"\x7fELF":
        problems.append("extensions/hearth: not an ELF file")
    elif data[4] != 2 or data[5] != 1:
        problems.append("extensions/hearth: not a 64-bit little-endian ELF")
    else:
        e_type, e_machine = struct.unpack_from("<HH", data, 16)
        if e_type not in (2, 3):  # ET_EXEC, ET_DYN (PIE)
            problems.append(f"extensions/hearth: ELF type {e_type} is not an executable")
        if e_machine != want_machine:
            got = machine_names.get(e_machine, f"machine {e_machine}")
            problems.append(f"extensions/hearth: built for {got}, expected {arch}")
        # PT_INTERP: the dynamic loader, if any, must be the one Amazon Linux provides.
        e_phoff, = struct.unpack_from("<Q", data, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
        interp = None
        for i in range(e_phnum):
            off = e_phoff + i * e_phentsize
            p_type, = struct.unpack_from("<I", data, off)
            if p_type == 3:  # PT_INTERP
                p_offset, = struct.unpack_from("<Q", data, off + 8)
                p_filesz, = struct.unpack_from("<Q", data, off + 32)
                interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode("ascii", "replace")
        if interp is not None and interp != want_interp:
            problems.append(f"extensions/hearth: dynamic loader {interp}, expected {want_interp} (or a static binary)")
        linkage = "static" if interp is None else f"dynamic ({interp})"
        glibc = sorted((m.group(1) for v in glibc_versions(data) if (m := re.fullmatch(r"GLIBC_([0-9]+\.[0-9]+)(?:\.[0-9]+)?", v))), key=vkey)
        if glibc:
            linkage += f", needs glibc {glibc[-1]}"
        if max_glibc and glibc and vkey(glibc[-1]) > vkey(max_glibc):
            problems.append(f"extensions/hearth: needs GLIBC_{glibc[-1]}, newer than --max-glibc {max_glibc} (link with cargo-lambda's --target <triple>.{max_glibc})")
        if not problems:
            print(f"check-layer: extensions/hearth: ELF {arch}, {linkage}, {len(data)} bytes, mode {oct(stat.S_IMODE(mode))}")

if "hearth/rds-ca-bundle.pem" in names:
    pem = z.read("hearth/rds-ca-bundle.pem")
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        problems.append("hearth/rds-ca-bundle.pem: no PEM certificate in it")

for p in problems:
    print(f"check-layer: {path}: {p}")
if problems:
    sys.exit(1)
print(f"check-layer: {path}: OK")
PY
