#!/usr/bin/env bash
# Installs Hearth's deploy tools into the project venv (.venv, or $HEARTH_VENV), from PyPI.
# Idempotent: a tool already present is not reinstalled. Versions are pinned to the ones
# verified with this repository (cfn-lint matches tests/python/requirements.txt); bump them
# here deliberately.
#
#   scripts/install-deploy-tools.sh          # everything below
#   scripts/install-deploy-tools.sh check    # cfn-lint + aws-sam-translator: what
#                                            # scripts/check-template.sh needs (CI)
#   scripts/install-deploy-tools.sh cargo-lambda   # cargo-lambda (its wheel brings zig)
#   scripts/install-deploy-tools.sh sam      # aws-sam-cli (includes the translator)
#
# Put "$venv/bin" on PATH to use them: `cargo lambda` finds cargo-lambda there, and
# cargo-lambda finds zig through the ziglang package of the same venv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HEARTH_VENV:-$root/.venv}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
CFN_LINT=cfn-lint==1.58.0
SAM_TRANSLATOR=aws-sam-translator==1.115.0
CARGO_LAMBDA=cargo-lambda==1.9.2
SAM_CLI=aws-sam-cli==1.170.0

pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
has_module() { "$venv/bin/python" -c "import $1" 2>/dev/null; }

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(check cargo-lambda sam)

for g in "${groups[@]}"; do
  case "$g" in
    check)
      [ -x "$venv/bin/cfn-lint" ] || pip_install "$CFN_LINT"
      has_module samtranslator || pip_install "$SAM_TRANSLATOR"
      echo "cfn-lint           $("$venv/bin/cfn-lint" --version 2>&1 | tail -1)"
      echo "aws-sam-translator $("$venv/bin/python" -c 'import samtranslator; print(samtranslator.__version__)')"
      ;;
    cargo-lambda)
      [ -x "$venv/bin/cargo-lambda" ] || pip_install "$CARGO_LAMBDA"
      echo "cargo-lambda       $("$venv/bin/cargo-lambda" lambda --version 2>&1 | tail -1)"
      ;;
    sam)
      [ -x "$venv/bin/sam" ] || pip_install "$SAM_CLI"
      echo "aws-sam-cli        $(SAM_CLI_TELEMETRY=0 "$venv/bin/sam" --version 2>&1 | tail -1)"
      ;;
    *)
      echo "install-deploy-tools: unknown group '$g' (accepted: check, cargo-lambda, sam)" >&2
      exit 2
      ;;
  esac
done
