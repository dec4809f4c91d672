/**
 * The sealed boxes of src/crypto/sealed_box.ts against libsodium's crypto_box_seal (what RT-CV's Go
 * `box.SealAnonymous` is compatible with), in both directions, and the key pair checks of login users.
 */

import assert from "node:assert/strict";
import sodium from "libsodium-wrappers";
import {
  generateKeyPair,
  openSealedBox,
  publicKeyOf,
  sealAnonymous,
  toBase64,
} from "../src/crypto/sealed_box.ts";
import { LoginKeyPair } from "../src/rtcv/login_users.ts";
import { sealPassword } from "./fake_rtcv.ts";

await sodium.ready;

Deno.test("a box libsodium sealed opens; a box sealed here opens with libsodium", () => {
  const pair = sodium.crypto_box_keypair();
  const keys = { publicKey: pair.publicKey, secretKey: pair.privateKey };
  for (const length of [0, 1, 32, 1000]) {
    const message = crypto.getRandomValues(new Uint8Array(length));
    const fromSodium = sodium.crypto_box_seal(message, pair.publicKey);
    assert.deepEqual(openSealedBox(fromSodium, keys), message);
    const fromHere = sealAnonymous(message, pair.publicKey);
    assert.equal(fromHere.length, length + 48);
    assert.deepEqual(sodium.crypto_box_seal_open(fromHere, pair.publicKey, pair.privateKey), message);
  }
});

Deno.test("a sealed box for another key, altered or too short does not open", () => {
  const pair = generateKeyPair();
  const other = generateKeyPair();
  const sealed = sealAnonymous(new TextEncoder().encode("hello"), pair.publicKey);
  assert.equal(openSealedBox(sealed, other), null);
  const altered = sealed.slice();
  altered[altered.length - 1] ^= 1;
  assert.equal(openSealedBox(altered, pair), null);
  assert.equal(openSealedBox(sealed.subarray(0, 47), pair), null);
  assert.deepEqual(publicKeyOf(pair.secretKey), pair.publicKey);
});

Deno.test("LoginKeyPair opens RT-CV passwords (32 random bytes in front) and never shows the private key", async () => {
  const pair = sodium.crypto_box_keypair();
  const text = { publicKey: toBase64(pair.publicKey), privateKey: toBase64(pair.privateKey) };
  const keyPair = await LoginKeyPair.from(text, "test");
  assert.equal(keyPair.openPassword(sealPassword("pässwörd ✓", text.publicKey)), "pässwörd ✓");
  assert.equal(keyPair.openPassword(sealPassword("", text.publicKey)), "");
  assert.equal(keyPair.openPassword("not base64!"), null);
  // Fewer than 32 bytes inside: not an RT-CV password.
  const short = toBase64(sodium.crypto_box_seal(new Uint8Array(10), pair.publicKey));
  assert.equal(keyPair.openPassword(short), null);
  for (const shown of [String(keyPair), JSON.stringify(keyPair), Deno.inspect(keyPair)]) {
    assert.ok(!shown.includes(text.privateKey), shown);
  }
  await assert.rejects(
    LoginKeyPair.from({ ...text, publicKey: toBase64(generateKeyPair().publicKey) }, "test"),
    /does not work/,
  );
});

Deno.test("deno task keypair prints a pair that passes the client's key pair check", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", new URL("../examples/keypair.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const printed = JSON.parse(new TextDecoder().decode(output.stdout));
  const pair = await LoginKeyPair.from(
    { publicKey: printed.public_key, privateKey: printed.private_key },
    "keypair",
  );
  assert.equal(pair.publicKey, printed.public_key);
  assert.ok(
    !new TextDecoder().decode(output.stderr).includes(printed.private_key),
    "stderr never repeats it",
  );
});
