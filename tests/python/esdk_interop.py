#!/usr/bin/env python3
"""Interop with Hearth's KMS messages through the official Python AWS Encryption SDK.

    .venv/bin/python tests/python/esdk_interop.py encrypt KEY_ARN [SUITE] < request.json
    .venv/bin/python tests/python/esdk_interop.py encrypt-many KEY_ARN < cases.json
    .venv/bin/python tests/python/esdk_interop.py decrypt KEY_ARN < request.json

encrypt reads {"plaintext": b64, "context": {...}} and prints the message as base64.
SUITE is an Algorithm name, AES_256_GCM_HKDF_SHA512_COMMIT_KEY unless given.
encrypt-many reads [{"suite": id, "frameLength": n (0: non-framed), "plaintext": b64,
"context": {...}}, ...] and prints a JSON list of base64 messages, one per case (one
process for many messages: the interpreter's start-up dominates otherwise).
decrypt reads {"ciphertext": b64, "context": {...} or null} and prints
{"plaintext": b64, "context": {...}, "suite": id}, the context without the reserved
aws-crypto- entries; when a context is given it must equal it, as the ESDK documentation
tells callers to check. Any failure exits 2 with one line on stderr.

KMS is reached through botocore, which honours AWS_ENDPOINT_URL (moto in the tests), the
region and static credentials from the environment. Commitment policy
REQUIRE_ENCRYPT_REQUIRE_DECRYPT (the default), except FORBID_ENCRYPT_ALLOW_DECRYPT to write
the non-committing suites; the strict KMS provider with KEY_ARN only.
"""

import base64
import json
import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy


def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in ("encrypt", "encrypt-many", "decrypt"):
        sys.exit("usage: esdk_interop.py encrypt|encrypt-many|decrypt KEY_ARN [SUITE] < request.json")
    op, key_arn = argv[1], argv[2]
    request = json.load(sys.stdin)
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn])
    if op == "encrypt-many":
        legacy = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
        )
        out = []
        for case in request:
            suite = Algorithm.get_by_id(case["suite"])
            message, _header = (client if suite.is_committing() else legacy).encrypt(
                source=base64.b64decode(case["plaintext"]),
                encryption_context=case.get("context") or {},
                key_provider=provider,
                algorithm=suite,
                frame_length=case["frameLength"],
            )
            out.append(base64.b64encode(message).decode())
        print(json.dumps(out))
        return
    if op == "encrypt":
        suite = Algorithm[argv[3]] if len(argv) == 4 else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
        message, _header = client.encrypt(
            source=base64.b64decode(request["plaintext"]),
            encryption_context=request.get("context") or {},
            key_provider=provider,
            algorithm=suite,
        )
        print(base64.b64encode(message).decode())
        return
    plaintext, header = client.decrypt(
        source=base64.b64decode(request["ciphertext"]), key_provider=provider
    )
    context = {k: v for k, v in header.encryption_context.items() if not k.startswith("aws-crypto-")}
    expected = request.get("context")
    if expected is not None and expected != context:
        raise ValueError("encryption context mismatch")
    print(
        json.dumps(
            {
                "plaintext": base64.b64encode(plaintext).decode(),
                "context": context,
                "suite": header.algorithm.algorithm_id,
            }
        )
    )


if __name__ == "__main__":
    try:
        main(sys.argv)
    except SystemExit:
        raise
    except Exception as e:  # one line for the test's assertion message
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(2)
