#!/usr/bin/env bash
# CI check of the SAM template (template.yaml), offline. Exits non-zero on any finding.
#
#   1. cfn-lint on template.yaml (SAM resources checked against SAM's schemas);
#   2. the SAM transform (aws-sam-translator, the library `sam validate` and CloudFormation
#      use) to plain CloudFormation, then cfn-lint on that: this is what sees IAM policies,
#      !GetAtt targets and Lambda limits inside what SAM generates (cfn-lint 1.x does not
#      run the transform itself);
#   Steps 1 and 2 run twice: on the template as written (defaults: alarms off) and on a
#   variant with EnableAlarms and a database switched on by default (DbHost set), so the
#   conditional alarms, SNS topic and dashboard are linted as CloudFormation would create them.
#   3. project rules: every HEARTH_* variable set on a function that carries a Hearth layer
#      is one the extension knows (the README's configuration table; the extension refuses
#      unknown HEARTH_* names at start), and every `BuildMethod: makefile` resource has a
#      build-<LogicalId> target in the Makefile; every alarm sets TreatMissingData and an
#      action; the dashboard body is valid JSON once its ${...} are substituted.
#
# Tools: cfn-lint and aws-sam-translator in the project venv, installed on first use by
# scripts/install-deploy-tools.sh check. Usage: scripts/check-template.sh [TEMPLATE]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HEARTH_VENV:-$root/.venv}"
template="${1:-$root/template.yaml}"
py="$venv/bin/python"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# A fresh machine has neither tool: install them (pinned, idempotent, ~40 s once).
if [ ! -x "$venv/bin/cfn-lint" ] || ! "$py" -c 'import samtranslator' 2>/dev/null; then
  echo "check-template: installing cfn-lint and aws-sam-translator into $venv"
  HEARTH_VENV="$venv" "$root/scripts/install-deploy-tools.sh" check
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0

# The variant with alarms (and a database, for the pool alarms) on by default.
alarms_on="$tmp/template-alarms-on.yaml"
"$py" - "$template" "$alarms_on" <<'PY' || status=1
import re, sys
src, out = sys.argv[1:3]
text = open(src, encoding="utf-8").read()
for param, value in (("EnableAlarms", '"true"'), ("DbHost", "db.example.internal")):
    text, n = re.subn(rf"(^  {param}:\n(?:    .*\n)*?    Default: ).*$", rf"\g<1>{value}", text, count=1, flags=re.M)
    if n != 1:
        print(f"check-template: cannot set the default of parameter {param} for the alarms-on variant")
        sys.exit(1)
open(out, "w", encoding="utf-8").write(text)
PY

for variant in "$template" "$alarms_on"; do
  label="$(basename "$template")"
  [ "$variant" = "$alarms_on" ] && label="$label with EnableAlarms=true and a database"
  echo "check-template: cfn-lint $label"
  "$venv/bin/cfn-lint" -- "$variant" || status=1

  echo "check-template: SAM transform + cfn-lint on the result ($label)"
  if "$py" "$root/scripts/sam_translate.py" "$variant" "$tmp/translated.json"; then
    "$venv/bin/cfn-lint" -- "$tmp/translated.json" || status=1
  else
    status=1
  fi
done

echo "check-template: project rules"
"$py" - "$template" "$root/README.md" "$root/Makefile" <<'PY' || status=1
import re, sys
from cfnlint.decode import decode

template_path, readme, makefile = sys.argv[1:4]
template, problems = decode(template_path)
if problems:
    for p in problems:
        print(p)
    sys.exit(1)

# The README's configuration table is generated from the extension's config sections, and a
# unit test keeps the two equal.
text = open(readme, encoding="utf-8").read()
table = text.split("<!-- config-table:start -->", 1)[-1].split("<!-- config-table:end -->", 1)[0]
known = set(re.findall(r'^\| `(HEARTH_[A-Z0-9_]+)`', table, re.M))
if not known:
    print(f"{readme}: found no configuration table rows; has the table moved?")
    sys.exit(1)
targets = set(re.findall(r"^(build-[A-Za-z0-9]+):", open(makefile, encoding="utf-8").read(), re.M))

found = []
for name, res in template.get("Resources", {}).items():
    props = res.get("Properties", {}) or {}
    meta = res.get("Metadata", {}) or {}
    if meta.get("BuildMethod") == "makefile" and f"build-{name}" not in targets:
        found.append(f"{name}: BuildMethod makefile but the Makefile has no build-{name} target")
    if res.get("Type") == "AWS::Serverless::Function" and props.get("Layers"):
        env = ((props.get("Environment") or {}).get("Variables") or {})
        for var in env:
            if var.startswith("HEARTH_") and var not in known:
                found.append(f"{name}: {var} is not in the README's configuration table; the extension would refuse to start")
    if res.get("Type") == "AWS::CloudWatch::Alarm":
        if props.get("TreatMissingData") not in ("notBreaching", "breaching", "ignore", "missing"):
            found.append(f"{name}: an alarm must choose TreatMissingData")
        if not props.get("AlarmActions"):
            found.append(f"{name}: an alarm without AlarmActions notifies nobody")
    if res.get("Type") == "AWS::CloudWatch::Dashboard":
        import json
        body = props.get("DashboardBody")
        body = body.get("Fn::Sub") if isinstance(body, dict) else body
        if not isinstance(body, str):
            found.append(f"{name}: DashboardBody should be a !Sub string")
        else:
            try:
                widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "X", body))["widgets"]
                for w in widgets:
                    for m in (w.get("properties") or {}).get("metrics", []):
                        if not (isinstance(m, list) and m and (isinstance(m[0], dict) or len(m) >= 2)):
                            found.append(f"{name}: malformed metric {m} in widget {w.get('properties', {}).get('title')}")
            except (ValueError, KeyError, TypeError) as e:
                found.append(f"{name}: DashboardBody is not valid dashboard JSON: {e}")
for f in found:
    print(f"check-template: {f}")
sys.exit(1 if found else 0)
PY

if [ "$status" -eq 0 ]; then
  echo "check-template: OK"
else
  echo "check-template: FAILED" >&2
fi
exit "$status"
