/**
 * Prints a new NaCl box key pair for RT-CV login users, as the config fields and environment variables take
 * it: `deno task keypair`. Register nothing by hand: the client registers the public key with the primary at
 * `set_credentials` when the server has none yet. Keep `private_key` as secret as the api key.
 *
 * @module
 */

import { generateKeyPair, toBase64 } from "../src/crypto/sealed_box.ts";

const pair = generateKeyPair();
const publicKey = toBase64(pair.publicKey);
const privateKey = toBase64(pair.secretKey);
// deno-lint-ignore no-console -- the output of this tool
console.log(JSON.stringify({ public_key: publicKey, private_key: privateKey }));
// deno-lint-ignore no-console -- the output of this tool
console.error(
  `# as environment variables:\n# RTCV_SCRAPER_CLIENT_PUBLIC_KEY=${publicKey}\n# RTCV_SCRAPER_CLIENT_PRIVATE_KEY=<private_key above>`,
);
