#!/usr/bin/env node
// Interop with Hearth's KMS messages through the official JavaScript AWS Encryption SDK
// (@aws-crypto/client-node, pinned by package-lock.json), with its defaults: commitment
// policy REQUIRE_ENCRYPT_REQUIRE_DECRYPT and, on encrypt, suite 0x0578
// (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384).
//
//   node tests/node/esdk_interop.js encrypt KEY_ARN < request.json
//   node tests/node/esdk_interop.js decrypt KEY_ARN < request.json
//
// encrypt reads {"plaintext": b64, "context": {...}} and prints the message as base64.
// decrypt reads {"ciphertext": b64} and prints {"plaintext": b64, "context": {...},
// "suite": id}; the context printed leaves out the reserved aws-crypto- entries. Any failure
// exits 2 with one line on stderr.
//
// KMS is reached at AWS_ENDPOINT_URL (moto in the tests) with the region and static
// credentials from the environment, through a keyring limited to KEY_ARN.
'use strict';

const { KmsKeyringNode, buildClient, getClient, KMS } = require('@aws-crypto/client-node');

async function main(argv) {
  if (argv.length !== 4 || !['encrypt', 'decrypt'].includes(argv[2])) {
    throw new Error('usage: esdk_interop.js encrypt|decrypt KEY_ARN < request.json');
  }
  const [, , op, keyArn] = argv;
  const request = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const clientProvider = getClient(KMS, {
    endpoint: process.env.AWS_ENDPOINT_URL,
    region: process.env.AWS_REGION,
  });
  const keyring = new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider });
  const { encrypt, decrypt } = buildClient();
  if (op === 'encrypt') {
    const { result } = await encrypt(keyring, Buffer.from(request.plaintext, 'base64'), {
      encryptionContext: request.context || {},
    });
    process.stdout.write(Buffer.from(result).toString('base64') + '\n');
    return;
  }
  const { plaintext, messageHeader } = await decrypt(keyring, Buffer.from(request.ciphertext, 'base64'));
  const context = {};
  for (const [k, v] of Object.entries(messageHeader.encryptionContext)) {
    if (!k.startsWith('aws-crypto-')) context[k] = v;
  }
  process.stdout.write(
    JSON.stringify({
      plaintext: Buffer.from(plaintext).toString('base64'),
      context,
      suite: messageHeader.suiteId,
    }) + '\n',
  );
}

main(process.argv).catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}`.replace(/\n/g, ' ') + '\n');
  process.exit(2);
});
