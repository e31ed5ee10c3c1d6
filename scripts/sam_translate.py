"""Translates a SAM template into plain CloudFormation, offline, for scripts/check-template.sh.

cfn-lint (1.x) lints SAM resources against SAM's own schemas without running the transform,
so it cannot see what the transform generates: a !GetAtt to a missing resource inside
`Policies`, a Lambda Timeout over 900 s, a malformed IAM statement. Linting the translated
template catches those. Local CodeUri/ContentUri paths are replaced by placeholder S3 URIs
first (the transform accepts only S3 locations; `sam package` would upload them).

Usage: python scripts/sam_translate.py TEMPLATE OUT.json
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

URI_KEYS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class NoManagedPolicies:
    """The template names no AWS managed policy; an empty map keeps the transform offline."""

    def load(self):
        return {}


def main(src: str, out: str) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template, problems = decode(src)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    for name, res in template.get("Resources", {}).items():
        key = URI_KEYS.get(res.get("Type"))
        props = res.get("Properties", {})
        if key and isinstance(props.get(key), str) and not props[key].startswith("s3://"):
            props[key] = f"s3://placeholder-bucket/{name}.zip"
    try:
        translated = transform(template, {"AWS::Region": os.environ["AWS_DEFAULT_REGION"]}, NoManagedPolicies())
    except Exception as e:  # the transform's errors carry a list of causes
        print(f"SAM transform failed: {e}", file=sys.stderr)
        for cause in getattr(e, "causes", []) or []:
            print(f"  - {cause}", file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
