"""Offline key provider and vector-file helpers shared by generate.py and decrypt.py.

The official Python AWS Encryption SDK needs a master key provider to encrypt or decrypt.
These tests must run offline, without KMS, with a plaintext data key that is known, so the
provider here is a stand-in for KMS:

* it calls itself "aws-kms" and uses KMS-style key ARNs as key ids, so the messages have
  exactly the shape Hearth writes;
* the data key it "generates" is the one the caller sets in NEXT_DATA_KEY;
* its "encrypted data key" is NOT encryption: b"static-wrap:" + (data key XOR 0x5c). That is
  all a test needs: any party can recover the data key from the message, on purpose.

Vector file format (also parsed by esdk/tests/interop.rs): '#' starts a comment line;
"[vector]" starts a record; then "name = value" lines. Binary values are lower-case hex.
  name, frame_length (decimal), data_key, plaintext, ciphertext,
  context = <hex key>:<hex value>                       (repeatable, any order)
  edk = <hex provider id>:<hex provider info>:<hex ciphertext>   (repeatable, header order)
"""

import attr

from aws_encryption_sdk.internal.str_ops import to_str
from aws_encryption_sdk.key_providers.base import (
    MasterKey,
    MasterKeyConfig,
    MasterKeyProvider,
    MasterKeyProviderConfig,
)
from aws_encryption_sdk.structures import DataKey, EncryptedDataKey

PROVIDER_ID = "aws-kms"
WRAP_PREFIX = b"static-wrap:"
WRAP_PAD = 0x5C

# The plaintext data key the next generate call returns (32 bytes for suite 0x0478).
NEXT_DATA_KEY = {"key": None}


def wrap(data_key):
    return WRAP_PREFIX + bytes(b ^ WRAP_PAD for b in data_key)


def unwrap(ciphertext):
    if not ciphertext.startswith(WRAP_PREFIX):
        raise ValueError("not a static-wrap ciphertext")
    return bytes(b ^ WRAP_PAD for b in ciphertext[len(WRAP_PREFIX):])


@attr.s(hash=True)
class StaticMasterKeyConfig(MasterKeyConfig):
    provider_id = attr.ib(default=PROVIDER_ID, hash=True, converter=to_str)


class StaticMasterKey(MasterKey):
    provider_id = None
    _config_class = StaticMasterKeyConfig

    def _generate_data_key(self, algorithm, encryption_context):
        key = NEXT_DATA_KEY["key"]
        if key is None or len(key) != algorithm.kdf_input_len:
            raise ValueError("set NEXT_DATA_KEY to a key of the suite's length first")
        return DataKey(key_provider=self.key_provider, data_key=key, encrypted_data_key=wrap(key))

    def _encrypt_data_key(self, data_key, algorithm, encryption_context):
        return EncryptedDataKey(key_provider=self.key_provider, encrypted_data_key=wrap(data_key.data_key))

    def _decrypt_data_key(self, encrypted_data_key, algorithm, encryption_context):
        key = unwrap(encrypted_data_key.encrypted_data_key)
        return DataKey(
            key_provider=self.key_provider,
            data_key=key,
            encrypted_data_key=encrypted_data_key.encrypted_data_key,
        )


class StaticKeyProvider(MasterKeyProvider):
    """Vends a StaticMasterKey for any key id; the first key added generates the data key."""

    provider_id = PROVIDER_ID
    _config_class = MasterKeyProviderConfig

    def __init__(self, **kwargs):  # the base class sets everything up in __new__
        pass

    def _new_master_key(self, key_id):
        return StaticMasterKey(key_id=key_id)


def write_vectors(path, header_lines, vectors):
    with open(path, "w", encoding="ascii") as out:
        for line in header_lines:
            out.write("# " + line + "\n")
        for v in vectors:
            out.write("\n[vector]\n")
            out.write("name = %s\n" % v["name"])
            out.write("frame_length = %d\n" % v["frame_length"])
            out.write("data_key = %s\n" % v["data_key"].hex())
            for k, val in sorted(v["context"].items()):
                out.write("context = %s:%s\n" % (k.encode("utf-8").hex(), val.encode("utf-8").hex()))
            for pid, info, ct in v["edks"]:
                out.write("edk = %s:%s:%s\n" % (pid.encode("utf-8").hex(), info.hex(), ct.hex()))
            out.write("plaintext = %s\n" % v["plaintext"].hex())
            out.write("ciphertext = %s\n" % v["ciphertext"].hex())


def read_vectors(path):
    vectors = []
    with open(path, encoding="ascii") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line == "[vector]":
                vectors.append({"context": {}, "edks": []})
                continue
            name, _, value = line.partition("=")
            name, value = name.strip(), value.strip()
            v = vectors[-1]
            if name == "context":
                k, val = value.split(":")
                v["context"][bytes.fromhex(k).decode("utf-8")] = bytes.fromhex(val).decode("utf-8")
            elif name == "edk":
                pid, info, ct = value.split(":")
                v["edks"].append((bytes.fromhex(pid).decode("utf-8"), bytes.fromhex(info), bytes.fromhex(ct)))
            elif name in ("name",):
                v[name] = value
            elif name == "frame_length":
                v[name] = int(value)
            else:
                v[name] = bytes.fromhex(value)
    return vectors
