#!/usr/bin/env python3
"""Generate known-answer vectors for hearth-esdk with the official Python AWS Encryption SDK.

Run once, offline, from the repository root:

    .venv/bin/python esdk/tests/vectors/generate.py esdk/tests/vectors/python-esdk.txt
    .venv/bin/python esdk/tests/vectors/generate.py --all-suites esdk/tests/vectors/python-esdk-suites.txt

The second form writes every one of the eleven algorithm suites (the non-committing ones,
format 1.0, under FORBID_ENCRYPT_ALLOW_DECRYPT), framed and non-framed (frame_length 0),
with and without context, empty and multi-frame plaintexts; signed suites carry the
aws-crypto-public-key context entry, which the vector's context records.

Every message is written by aws-encryption-sdk (suite AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
message format 2.0, framed) with a data key chosen here, then decrypted again by the same SDK
as a self-check. The Rust test esdk/tests/interop.rs decrypts each one and compares the
plaintext, context and encrypted data keys. Message ids are random, so re-running produces
different (equally valid) ciphertexts.
"""

import hashlib
import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy

import static_keys

SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
ARN_PRIMARY = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
ARN_FALLBACK = "arn:aws:kms:eu-central-1:123456789012:key/66666666-7777-8888-9999-000000000000"


# The Python SDK only accepts frame lengths that are multiples of 128 on encrypt (it checks
# against the AES block size in bits); the Rust side takes any non-zero length.
def pattern(n):
    return bytes((i * 31 + 7) % 251 for i in range(n))


# name, context, plaintext, frame length, key ids (the first generates the data key)
CASES = [
    ("empty-plaintext-empty-context", {}, b"", 4096, [ARN_PRIMARY]),
    ("small-with-context", {"tenant": "t-1", "purpose": "hearth-test"}, b"hello, hearth", 4096, [ARN_PRIMARY]),
    ("several-frames", {"k": "v"}, pattern(300), 128, [ARN_PRIMARY]),
    ("exact-multiple-of-frame", {}, pattern(256), 128, [ARN_PRIMARY]),
    ("exactly-one-frame", {}, pattern(128), 128, [ARN_PRIMARY]),
    ("many-small-frames", {}, pattern(1000), 128, [ARN_PRIMARY]),
    (
        "unicode-context-sorting",
        {"a": "lower", "B": "upper", "\u00e9t\u00e9": "\u65e5\u672c", "": "empty key", "z": ""},
        "gr\u00fc\u00dfe \U0001F30D".encode("utf-8"),
        4096,
        [ARN_PRIMARY],
    ),
    ("two-encrypted-data-keys", {"tenant": "t-2"}, b"primary and fallback region", 4096, [ARN_PRIMARY, ARN_FALLBACK]),
    ("default-frame-10k", {"size": "10000"}, pattern(10000), 4096, [ARN_PRIMARY]),
]


# name, context, plaintext, frame length (0: non-framed), for each suite
SUITE_SHAPES = [
    ("framed-multi-frame-context", {"tenant": "t-1", "purpose": "hearth-test"}, pattern(300), 128),
    ("framed-empty-no-context", {}, b"", 4096),
    ("non-framed-context", {"k": "v"}, pattern(1000), 0),
    ("non-framed-empty-no-context", {}, b"", 0),
]


def main_all_suites(out_path):
    vectors = []
    for suite in Algorithm:
        committing = suite.is_committing()
        policy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT if committing else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
        client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
        reader = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
        for shape, context, plaintext, frame_length in SUITE_SHAPES:
            name = "%04x-%s" % (suite.algorithm_id, shape)
            data_key = hashlib.sha256(("hearth-esdk vector " + name).encode()).digest()[: suite.kdf_input_len]
            static_keys.NEXT_DATA_KEY["key"] = data_key
            provider = static_keys.StaticKeyProvider()
            provider.add_master_keys_from_list([ARN_PRIMARY])
            ciphertext, header = client.encrypt(
                source=plaintext,
                key_provider=provider,
                encryption_context=context,
                algorithm=suite,
                frame_length=frame_length,
            )
            assert header.algorithm == suite, header.algorithm
            assert ciphertext[0] == (2 if committing else 1), ciphertext[:1].hex()
            decrypted, dec_header = reader.decrypt(source=ciphertext, key_provider=static_keys.StaticKeyProvider())
            assert decrypted == plaintext
            full_context = dict(dec_header.encryption_context)
            assert ("aws-crypto-public-key" in full_context) == (suite.signing_algorithm_info is not None)
            vectors.append(
                {
                    "name": name,
                    "frame_length": frame_length,
                    "data_key": data_key,
                    "context": full_context,
                    "edks": sorted(
                        (e.key_provider.provider_id, e.key_provider.key_info, e.encrypted_data_key)
                        for e in header.encrypted_data_keys
                    ),
                    "plaintext": plaintext,
                    "ciphertext": ciphertext,
                }
            )
    static_keys.write_vectors(
        out_path,
        [
            "Known-answer vectors written by the official Python AWS Encryption SDK %s" % aws_encryption_sdk.__version__,
            "for every algorithm suite (the first 4 hex digits of the name), framed and non-framed, by",
            "esdk/tests/vectors/generate.py --all-suites; format described in static_keys.py. Do not edit by hand.",
            "context lines hold the message's full context (aws-crypto-public-key of signed suites included).",
        ],
        vectors,
    )
    print("wrote %d vectors to %s" % (len(vectors), out_path))


def main(out_path):
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    vectors = []
    for name, context, plaintext, frame_length, key_ids in CASES:
        data_key = hashlib.sha256(("hearth-esdk vector " + name).encode()).digest()
        static_keys.NEXT_DATA_KEY["key"] = data_key
        provider = static_keys.StaticKeyProvider()
        provider.add_master_keys_from_list(key_ids)
        ciphertext, header = client.encrypt(
            source=plaintext,
            key_provider=provider,
            encryption_context=context,
            algorithm=SUITE,
            frame_length=frame_length,
        )
        assert header.algorithm == SUITE, header.algorithm
        assert ciphertext[0] == 2 and ciphertext[1:3] == b"\x04\x78", ciphertext[:3].hex()

        # Self-check with a fresh provider that knows no keys in advance.
        decrypted, dec_header = client.decrypt(source=ciphertext, key_provider=static_keys.StaticKeyProvider())
        assert decrypted == plaintext
        assert dict(dec_header.encryption_context) == context

        edks = sorted(
            (e.key_provider.provider_id, e.key_provider.key_info, e.encrypted_data_key)
            for e in header.encrypted_data_keys
        )
        vectors.append(
            {
                "name": name,
                "frame_length": frame_length,
                "data_key": data_key,
                "context": context,
                "edks": edks,
                "plaintext": plaintext,
                "ciphertext": ciphertext,
            }
        )
    static_keys.write_vectors(
        out_path,
        [
            "Known-answer vectors written by the official Python AWS Encryption SDK %s" % aws_encryption_sdk.__version__,
            "(suite 0x0478 AES_256_GCM_HKDF_SHA512_COMMIT_KEY, format 2.0, framed) by",
            "esdk/tests/vectors/generate.py; format described in static_keys.py. Do not edit by hand.",
            "edk lines are sorted (the Python SDK keeps encrypted data keys in a set).",
        ],
        vectors,
    )
    print("wrote %d vectors to %s" % (len(vectors), out_path))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--all-suites":
        main_all_suites(sys.argv[2])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit("usage: generate.py [--all-suites] OUTPUT")
