#!/usr/bin/env bash
# Installs everything the test suite needs, from the package registries only. Idempotent:
# a second run checks and returns in about a second.
#   - Debian: PostgreSQL 15 (the Aurora stand-in), pgbouncer (the pooler stand-in), curl, openssl (test TLS CA), iproute2 (ss)
#   - the project virtualenv .venv: moto, the Python AWS Encryption SDK, cfn-lint
#   - tests/node/node_modules: the JavaScript AWS Encryption SDK, `npm ci` from the lockfile
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ss >/dev/null || need_apt+=(iproute2)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian packages start a cluster on 5432 and a PgBouncer on 6432; the tests never use
# them (they start their own on free ports), so they are left alone.

req=tests/python/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "preparing the virtualenv .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
# The JavaScript ESDK, exactly as package-lock.json pins it; reinstalled when the lockfile
# changes.
lock=tests/node/package-lock.json
node_stamp=tests/node/node_modules/.lock.sha256
node_want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  echo "installing the JavaScript AWS Encryption SDK (npm ci)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$node_want" > "$node_stamp"
fi
echo "test dependencies ready: $(/usr/lib/postgresql/15/bin/postgres --version), moto $(.venv/bin/python -c 'import moto; print(moto.__version__)'), @aws-crypto/client-node $(node -p 'require("./tests/node/node_modules/@aws-crypto/client-node/package.json").version')"
