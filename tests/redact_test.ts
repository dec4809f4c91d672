import assert from "node:assert/strict";
import { REDACTED, redactSecrets } from "../src/debug/redact.ts";

const R = JSON.stringify(REDACTED);

/** [input, expected] pairs. */
const CASES: [string, string, string][] = [
  ["no secrets", '{"type":"ping"}', '{"type":"ping"}'],
  ["empty line", "", ""],
  ["junk without secrets", "not json at all {", "not json at all {"],
  [
    "set_credentials",
    '{"type":"set_credentials","content":{"server_location":"https://a","api_key_id":"id1","api_key":"s3cret"}}',
    `{"type":"set_credentials","content":{"server_location":"https://a","api_key_id":"id1","api_key":${R}}}`,
  ],
  [
    "array of credentials",
    '{"type":"set_multiple_credentials","content":[{"api_key_id":"a","api_key":"k1","primary":true},' +
    '{"api_key_id":"b","api_key":"k2"}]}',
    `{"type":"set_multiple_credentials","content":[{"api_key_id":"a","api_key":${R},"primary":true},` +
    `{"api_key_id":"b","api_key":${R}}]}`,
  ],
  [
    "login-users private key in set_credentials (public key kept)",
    '{"type":"set_credentials","content":{"api_key":"k","public_key":"pub=","private_key":"cHJpdg=="}}',
    `{"type":"set_credentials","content":{"api_key":${R},"public_key":"pub=","private_key":${R}}}`,
  ],
  [
    "privateKey, any case, escaped name",
    '{"PrivateKey":"a","priv\\u0061te_key":"b"}',
    `{"PrivateKey":${R},"priv\\u0061te_key":${R}}`,
  ],
  ["escaped quote in value", '{"api_key":"a\\"b","x":1}', `{"api_key":${R},"x":1}`],
  ["escaped backslash at end of value", '{"api_key":"ab\\\\","x":1}', `{"api_key":${R},"x":1}`],
  ["unicode escape in value", '{"api_key":"\\u0041\\"\\\\x"}', `{"api_key":${R}}`],
  ["whitespace around the colon", '{ "api_key" \t:\t "v" , "n": 2 }', `{ "api_key" \t:\t ${R} , "n": 2 }`],
  ["number value", '{"api_key":12345,"x":1}', `{"api_key":${R},"x":1}`],
  ["negative float value", '{"api_key": -1.5e3}', `{"api_key": ${R}}`],
  ["null value", '{"api_key":null}', `{"api_key":${R}}`],
  ["boolean value", '{"api_key":true}', `{"api_key":${R}}`],
  ["object value", '{"api_key":{"a":"}","b":[1,2]},"x":1}', `{"api_key":${R},"x":1}`],
  ["array value", '{"api_key":["k1","k]2"],"x":1}', `{"api_key":${R},"x":1}`],
  ["apiKey spelling", '{"apiKey":"v"}', `{"apiKey":${R}}`],
  [
    "other letter case",
    '{"API_KEY":"v","ApiKey":"w","Token":"t"}',
    `{"API_KEY":${R},"ApiKey":${R},"Token":${R}}`,
  ],
  [
    "ingest token",
    '{"type":"set_ingest","content":{"base_url":"https://i","token":"tok"}}',
    `{"type":"set_ingest","content":{"base_url":"https://i","token":${R}}}`,
  ],
  [
    "escaped key name",
    '{"api\\u005fkey":"v","\\u0074oken":"t"}',
    `{"api\\u005fkey":${R},"\\u0074oken":${R}}`,
  ],
  [
    "truncated string value",
    '{"type":"set_credentials","content":{"api_key":"s3cr',
    `{"type":"set_credentials","content":{"api_key":${R}`,
  ],
  ["truncated object value", '{"api_key":{"nested":"s3cr', `{"api_key":${R}`],
  ["truncated after the colon", '{"api_key":', '{"api_key":'],
  ["truncated after the colon and spaces", '{"api_key":  ', '{"api_key":  '],
  ["junk around", 'garbage "api_key":"v" more garbage', `garbage "api_key":${R} more garbage`],
  ["stray quote before the key", 'x" "api_key":"v"', `x" "api_key":${R}`],
  ["junk value", '{"api_key":abc"def","x":1}', `{"api_key":${R},"x":1}`],
  [
    "two lines worth of JSON on one line",
    '{"api_key":"a"}{"api_key":"b"}',
    `{"api_key":${R}}{"api_key":${R}}`,
  ],
  ["nested secret in a secret", '{"token":{"api_key":"x"},"y":2}', `{"token":${R},"y":2}`],
  [
    "api_key_id and other lookalikes are kept",
    '{"api_key_id":"id","my_api_key":"m","tokens":"t","encryption_key":"e"}',
    '{"api_key_id":"id","my_api_key":"m","tokens":"t","encryption_key":"e"}',
  ],
  ["the word as a value is kept", '{"key":"token","note":"api_key"}', '{"key":"token","note":"api_key"}'],
  [
    "the word inside a string value is kept",
    '{"note":"send \\"api_key\\": here","x":1}',
    '{"note":"send \\"api_key\\": here","x":1}',
  ],
  ["non-ASCII around is kept", '{"naam":"Jürgen ☃","api_key":"ü"}', `{"naam":"Jürgen ☃","api_key":${R}}`],
  ["replacement characters are kept", '\uFFFD{"api_key":"\uFFFD"}\uFFFD', `\uFFFD{"api_key":${R}}\uFFFD`],
  ["already redacted", `{"api_key":${R}}`, `{"api_key":${R}}`],
];

for (const [name, input, expected] of CASES) {
  Deno.test(`redactSecrets: ${name}`, () => {
    assert.equal(redactSecrets(input), expected);
  });
}

Deno.test("REDACTED is the string the parsed value equals", () => {
  assert.equal(REDACTED, "<redacted>");
  const parsed = JSON.parse(redactSecrets('{"content":{"api_key":"s"}}'));
  assert.equal(parsed.content.api_key, REDACTED);
});

Deno.test("redacted valid JSON stays valid JSON with everything else unchanged", () => {
  const value = {
    type: "set_credentials",
    content: [
      { server_location: "https://a", api_key_id: "x", api_key: 'we"ird\\ke}y', primary: true },
      { server_location: "https://b", api_key_id: "y", api_key: "plain" },
    ],
    extra: { token: ["a", { b: "c" }], keep: "me" },
  };
  const out = JSON.parse(redactSecrets(JSON.stringify(value, null, 2)));
  assert.deepEqual(out, {
    ...value,
    content: value.content.map((c) => ({ ...c, api_key: REDACTED })),
    extra: { token: REDACTED, keep: "me" },
  });
});

Deno.test("never throws and never leaks a plain secret, for every prefix of a line", () => {
  const line = '{"type":"set_credentials","content":[{"api_key_id":"i","api_key":"SECRETVALUE"},' +
    '{"api_key":"SECRETVALUE2","token":"SECRETVALUE3"}]}';
  for (let i = 0; i <= line.length; i++) {
    const prefix = line.slice(0, i);
    const out = redactSecrets(prefix);
    assert.ok(!out.includes("SECRET"), `leak for prefix ${JSON.stringify(prefix)}: ${out}`);
  }
});

Deno.test("never throws on random junk", () => {
  const alphabet = [
    '"',
    "\\",
    ":",
    "{",
    "}",
    "[",
    "]",
    ",",
    " ",
    "a",
    "api_key",
    "token",
    "u",
    "\n",
    "\uD800",
  ];
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let n = 0; n < 2000; n++) {
    let s = "";
    for (let k = rand(40); k > 0; k--) s += alphabet[rand(alphabet.length)];
    assert.equal(typeof redactSecrets(s), "string");
  }
});

Deno.test("a long line is handled quickly", () => {
  const big = "x".repeat(4 * 1024 * 1024);
  const lines = [
    `{"type":"send_cv","content":{"referenceNumber":"1","presentation":"${big}"}}`,
    `{"api_key":"${big}`,
    '{"token":'.repeat(100_000),
    '"api_key":{'.repeat(100_000),
    '"\\'.repeat(200_000),
  ];
  const start = performance.now();
  for (const line of lines) redactSecrets(line);
  assert.ok(performance.now() - start < 5000, "redaction of long lines took too long");
  assert.equal(redactSecrets(lines[0]), lines[0]);
  assert.equal(redactSecrets(lines[1]), `{"api_key":${R}`);
});
