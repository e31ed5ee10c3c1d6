#!/usr/bin/env python3
"""Decrypt messages written by hearth-esdk with the official Python AWS Encryption SDK.

    .venv/bin/python esdk/tests/vectors/decrypt.py FILE

FILE uses the vector format of static_keys.py; the Rust test
`python_decrypts_rust_messages` (esdk/tests/interop.rs, ignored by default) writes it. Each
message's encrypted data keys must be static-wrap ciphertexts (see static_keys.py). Exits
non-zero, naming the vector, if any message fails to decrypt or decrypts to anything other
than the recorded plaintext and context.
"""

import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy

import static_keys


def main(path):
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    vectors = static_keys.read_vectors(path)
    if not vectors:
        sys.exit("no vectors in %s" % path)
    for v in vectors:
        plaintext, header = client.decrypt(source=v["ciphertext"], key_provider=static_keys.StaticKeyProvider())
        problems = []
        if header.algorithm not in (
            Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
            Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
        ):
            problems.append("suite %r" % header.algorithm)
        if plaintext != v["plaintext"]:
            problems.append("plaintext differs")
        # Signed messages add the reserved public key entry to the caller's context.
        context = {k: val for k, val in header.encryption_context.items() if k != "aws-crypto-public-key"}
        if (header.algorithm.signing_algorithm_info is not None) != ("aws-crypto-public-key" in header.encryption_context):
            problems.append("public key entry does not match the suite")
        if context != v["context"]:
            problems.append("context %r != %r" % (context, v["context"]))
        if header.frame_length != v["frame_length"]:
            problems.append("frame length %d" % header.frame_length)
        if problems:
            sys.exit("%s: %s" % (v["name"], "; ".join(problems)))
        print("ok %s (%d bytes)" % (v["name"], len(plaintext)))
    print("python aws-encryption-sdk %s decrypted %d hearth-esdk messages" % (aws_encryption_sdk.__version__, len(vectors)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: decrypt.py FILE")
    main(sys.argv[1])
