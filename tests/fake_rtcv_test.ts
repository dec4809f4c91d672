/**
 * The fake RT-CV holds to RTCV_FACTS.md point by point: the other tests rely on it behaving like the real
 * server. Raw `fetch` against the fake, no client code involved (apart from the sealed-box opener, checked
 * here against the fake's libsodium sealing).
 */

import assert from "node:assert/strict";
import sodium from "libsodium-wrappers";
import { fromBase64, openSealedBox } from "../src/crypto/sealed_box.ts";
import {
  DEFAULT_FAKE_KEY,
  FAKE_RTCV_BODY_LIMIT,
  FAKE_RTCV_VARIANTS,
  type FakeRtcv,
  ROLES,
  rtcvAuthHeader,
  sha512Hex,
  startFakeRtcv,
} from "./fake_rtcv.ts";

await sodium.ready;

const ID = DEFAULT_FAKE_KEY.apiKeyId;
const JSON_TYPE = { "content-type": "application/json" };

async function call(
  rtcv: FakeRtcv,
  method: string,
  path: string,
  options: { body?: unknown; auth?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown }> {
  const auth = options.auth === undefined ? await rtcvAuthHeader(ID, DEFAULT_FAKE_KEY.apiKey) : options.auth;
  const headers: Record<string, string> = { ...JSON_TYPE, ...options.headers };
  if (auth !== null) headers.authorization = auth;
  const body = options.body === undefined
    ? undefined
    : typeof options.body === "string"
    ? options.body
    : JSON.stringify(options.body);
  const response = await fetch(rtcv.url + path, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // left as text
  }
  return { status: response.status, body: parsed };
}

const scan = (cv: unknown) => ({ cv });

Deno.test("fake: unknown and removed routes answer 500 Cannot GET before auth; wrong method 500 Method Not Allowed", async () => {
  for (const variant of FAKE_RTCV_VARIANTS) {
    await using rtcv = await startFakeRtcv({ variant });
    const removed = variant === "newest"
      ? ["/api/v1/scraper/scannedReferenceNrs/since/days/30", "/api/v1/secrets/myKey/a/b"]
      : ["/api/v1/scraperUsers/" + ID, "/api/v1/scraper/allCVs"];
    for (const path of ["/api/v1/nope", ...removed]) {
      const method = path.endsWith("allCVs") ? "POST" : "GET";
      assert.deepEqual(await call(rtcv, method, path, { auth: null }), {
        status: 500,
        body: { error: `Cannot ${method} ${path}` },
      }, `${variant} ${path}`);
    }
    assert.deepEqual(await call(rtcv, "GET", "/api/v1/scraper/scanCV"), {
      status: 500,
      body: { error: "Method Not Allowed" },
    });
  }
});

Deno.test("fake: health without auth; keyinfo with and without a trailing slash", async () => {
  await using rtcv = await startFakeRtcv();
  assert.deepEqual(await call(rtcv, "GET", "/api/v1/health", { auth: null }), {
    status: 200,
    body: { status: true, appVersion: "fake-rtcv" },
  });
  for (const path of ["/api/v1/auth/keyinfo", "/api/v1/auth/keyinfo/"]) {
    const answer = await call(rtcv, "GET", path);
    assert.equal(answer.status, 200);
    assert.deepEqual((answer.body as { roles: unknown }).roles, [{
      role: 1,
      slug: "scraper",
      description: "",
    }]);
  }
});

Deno.test("fake: auth answers: missing 400, wrong 401, bad id 400, bad length 400, missing role 403; upper-case hash and the raw key accepted", async () => {
  const rawKey = "0123456789abcdef0123456789abcdef"; // 32 characters: the raw header is 63 long
  await using rtcv = await startFakeRtcv({
    keys: [{ ...DEFAULT_FAKE_KEY }, {
      apiKeyId: "bbbbbbbbbbbbbbbbbbbbbbbb",
      apiKey: rawKey,
      roles: [ROLES.admin],
    }],
  });
  const keyinfo = "/api/v1/auth/keyinfo";
  const hash = await sha512Hex(DEFAULT_FAKE_KEY.apiKey);
  assert.deepEqual(await call(rtcv, "GET", keyinfo, { auth: null }), {
    status: 400,
    body: { error: "missing authorization header" },
  });
  assert.deepEqual(await call(rtcv, "GET", keyinfo, { auth: `Basic ${ID}:${"0".repeat(128)}` }), {
    status: 401,
    body: { error: "auth header is invalid" },
  });
  assert.deepEqual(await call(rtcv, "GET", keyinfo, { auth: `Basic ${"c".repeat(24)}:${hash}` }), {
    status: 401,
    body: { error: "auth header is invalid" },
  });
  assert.match(
    JSON.stringify(await call(rtcv, "GET", keyinfo, { auth: `Basic ${"z".repeat(24)}:${hash}` })),
    /400.*auth header has invalid format/,
  );
  assert.deepEqual(await call(rtcv, "GET", keyinfo, { auth: `Basic ${ID}:${hash.slice(1)}` }), {
    status: 400,
    body: { error: "invalid length" },
  });
  assert.equal((await call(rtcv, "GET", keyinfo, { auth: `Basic ${ID}:${hash.toUpperCase()}` })).status, 200);
  const raw = `Basic bbbbbbbbbbbbbbbbbbbbbbbb:${rawKey}`;
  assert.equal(raw.length, 63);
  assert.equal((await call(rtcv, "GET", keyinfo, { auth: raw })).status, 200);
  assert.equal(
    (await call(rtcv, "POST", "/api/v1/scraper/scanCV", { auth: raw, body: scan({}) })).status,
    403,
  );
});

Deno.test("fake: scanCV answers success and hasMatches, no matches field; CV checks 400 with RT-CV's wording", async () => {
  await using rtcv = await startFakeRtcv({ hasMatches: true });
  assert.deepEqual(
    await call(rtcv, "POST", "/api/v1/scraper/scanCV", { body: scan({ referenceNumber: "a" }) }),
    {
      status: 200,
      body: { success: true, hasMatches: true },
    },
  );
  const cases: [unknown, string][] = [
    [{}, "referenceNumber must be set"],
    [{ referenceNumber: "" }, "referenceNumber must be set"],
    [
      { referenceNumber: "f", createdAt: "2999-01-01T00:00:00Z" },
      "createdAt can't be more than 24 hours in the future",
    ],
    [
      {
        referenceNumber: "d",
        personalDetails: { dob: new Date(Date.now() - 5 * 365 * 86_400_000).toISOString() },
      },
      "date of birth must be at least 13 years ago",
    ],
    [
      { referenceNumber: "l", languages: [{ name: "nl", levelSpoken: 4 }] },
      "language level must be between 0 and 3",
    ],
  ];
  for (const [cv, message] of cases) {
    assert.deepEqual(await call(rtcv, "POST", "/api/v1/scraper/scanCV", { body: scan(cv) }), {
      status: 400,
      body: { error: message },
    }, JSON.stringify(cv));
  }
});

Deno.test("fake: what does not decode is 500 with Go's message (dates, types, cv:[], invalid JSON, phone, licence, Content-Type, size)", async () => {
  await using rtcv = await startFakeRtcv();
  const path = "/api/v1/scraper/scanCV";
  const cases: [unknown, RegExp][] = [
    [scan({ referenceNumber: "a", createdAt: "2024-01-02" }), /^parsing time .*2024-01-02/],
    [
      scan({ referenceNumber: 12 }),
      /^json: cannot unmarshal number into Go struct field .*referenceNumber of type string/,
    ],
    [scan([]), /^json: cannot unmarshal array into Go struct field cv of type models\.CV/],
    [scan({ referenceNumber: "a", educations: {} }), /cannot unmarshal object .*educations/],
    ['{"cv": {', /^unexpected end of JSON input$/],
    ["nonsense", /^invalid character/],
    [scan({ referenceNumber: "a", personalDetails: { phoneNumber: "call me" } }), /^invalid phone number$/],
    [scan({ referenceNumber: "a", personalDetails: { phoneNumber: "+31 (0)6-1234 5678" } }), /^OK$/],
    [scan({ referenceNumber: "a", driversLicenses: ["Q9"] }), /^invalid drivers licence$/],
  ];
  for (const [body, expected] of cases) {
    const answer = await call(rtcv, "POST", path, { body });
    if (expected.source === "^OK$") {
      assert.equal(answer.status, 200, JSON.stringify(answer));
      continue;
    }
    assert.equal(answer.status, 500, JSON.stringify(body));
    assert.match((answer.body as { error: string }).error, expected);
  }
  assert.deepEqual(
    await call(rtcv, "POST", path, {
      body: scan({ referenceNumber: "a" }),
      headers: { "content-type": "text/plain" },
    }),
    { status: 500, body: { error: "Unprocessable Entity" } },
  );
  const huge = JSON.stringify(scan({ referenceNumber: "a", presentation: "x".repeat(FAKE_RTCV_BODY_LIMIT) }));
  assert.deepEqual(await call(rtcv, "POST", path, { body: huge, auth: null }), {
    status: 500,
    body: { error: "Request Entity Too Large" },
  });
});

Deno.test("fake: secrets belong to their key, segments are taken raw, short or wrong encryption keys are 500", async () => {
  const other = { apiKeyId: "cccccccccccccccccccccccc", apiKey: "other-scraper-key", roles: [1] };
  await using rtcv = await startFakeRtcv({ keys: [{ ...DEFAULT_FAKE_KEY }, other] });
  rtcv.setSecret("a b", "encryption-key-0001", { v: 1 });
  rtcv.setSecret("site", "encryption-key-0001", { v: 2 });
  const get = (path: string, auth?: string) => call(rtcv, "GET", `/api/v1/secrets/myKey/${path}`, { auth });
  assert.deepEqual(await get("site/encryption-key-0001"), { status: 200, body: { v: 2 } });
  assert.deepEqual(await get("a%20b/encryption-key-0001"), {
    status: 404,
    body: { error: "item not found" },
  });
  assert.deepEqual(await get("site/short"), {
    status: 500,
    body: { error: "encryption key must be at least 16 characters" },
  });
  assert.deepEqual(await get("site/encryption-key-0002"), {
    status: 500,
    body: { error: "cipher: message authentication failed" },
  });
  assert.deepEqual(
    await get("site/encryption-key-0001", await rtcvAuthHeader(other.apiKeyId, other.apiKey)),
    {
      status: 404,
      body: { error: "item not found" },
    },
  );
});

Deno.test("fake: scraperUsers routes: GET, setPublicKey (replacing removes users), add user as admin, sealed for real", async () => {
  const admin = {
    apiKeyId: "dddddddddddddddddddddddd",
    apiKey: "admin-key-for-dashboard",
    roles: [ROLES.admin],
  };
  await using rtcv = await startFakeRtcv({ variant: "newest", keys: [{ ...DEFAULT_FAKE_KEY }, admin] });
  const adminAuth = await rtcvAuthHeader(admin.apiKeyId, admin.apiKey);
  const path = `/api/v1/scraperUsers/${ID}`;
  assert.deepEqual(await call(rtcv, "GET", path), {
    status: 200,
    body: { id: null, scraperId: ID, scraperPubKey: null, users: [] },
  });
  const addUser = (username: string, password: string, auth = adminAuth) =>
    call(rtcv, "PATCH", path, { auth, body: { username, password } });
  assert.match(JSON.stringify(await addUser("ada", "pw")), /400.*this scraper has no public key yet/);

  const pair = sodium.crypto_box_keypair();
  const publicKey = sodium.to_base64(pair.publicKey, sodium.base64_variants.ORIGINAL);
  assert.equal(publicKey.length, 44);
  assert.equal(
    (await call(rtcv, "PATCH", `${path}/setPublicKey`, { body: { publicKey: "short" } })).status,
    400,
  );
  assert.equal((await call(rtcv, "PATCH", `${path}/setPublicKey`, { body: { publicKey } })).status, 200);
  assert.equal((await addUser("ada", "pässwörd")).status, 200);
  assert.equal((await addUser("bob", "x", await rtcvAuthHeader(ID, DEFAULT_FAKE_KEY.apiKey))).status, 403);

  const answer = await call(rtcv, "GET", path);
  const users = (answer.body as { users: { username: string; encryptedPassword: string }[] }).users;
  assert.equal((answer.body as { scraperPubKey: string }).scraperPubKey, publicKey);
  assert.equal(users.length, 1);
  const sealed = sodium.from_base64(users[0].encryptedPassword, sodium.base64_variants.ORIGINAL);
  const plain = sodium.crypto_box_seal_open(sealed, pair.publicKey, pair.privateKey);
  assert.equal(plain.length, 32 + new TextEncoder().encode("pässwörd").length, "32 random bytes in front");
  assert.equal(new TextDecoder().decode(plain.subarray(32)), "pässwörd");
  // The client's opener reads what libsodium sealed.
  const opened = openSealedBox(fromBase64(users[0].encryptedPassword)!, {
    publicKey: pair.publicKey,
    secretKey: pair.privateKey,
  });
  assert.equal(new TextDecoder().decode(opened!.subarray(32)), "pässwörd");

  // Without the scraper role the passwords are not sent.
  const asAdmin = await call(rtcv, "GET", path, { auth: adminAuth });
  assert.deepEqual((asAdmin.body as { users: unknown }).users, [{ username: "ada" }]);

  // A different key removes every stored user; the same key keeps them.
  assert.equal((await call(rtcv, "PATCH", `${path}/setPublicKey`, { body: { publicKey } })).status, 200);
  assert.equal(rtcv.usersOf().users.length, 1);
  const otherKey = sodium.to_base64(sodium.crypto_box_keypair().publicKey, sodium.base64_variants.ORIGINAL);
  assert.equal(
    (await call(rtcv, "PATCH", `${path}/setPublicKey`, { body: { publicKey: otherKey } })).status,
    200,
  );
  assert.equal(rtcv.usersOf().users.length, 0);
});

Deno.test("fake: allCVs takes {cvs}, an empty list is an error; scanCVDocument records both multipart parts", async () => {
  await using rtcv = await startFakeRtcv({ variant: "newest", hasMatches: true });
  assert.deepEqual(
    await call(rtcv, "POST", "/api/v1/scraper/allCVs", { body: { cvs: [{ referenceNumber: "a" }] } }),
    {
      status: 200,
      body: {},
    },
  );
  assert.equal((await call(rtcv, "POST", "/api/v1/scraper/allCVs", { body: { cvs: [] } })).status, 400);
  assert.equal((await call(rtcv, "POST", "/api/v1/scraper/allCVs", { body: { cvs: {} } })).status, 500);

  const form = new FormData();
  form.append("metadata", JSON.stringify({ referenceNumber: "doc-1" }));
  form.append("cv", new File([new Uint8Array([37, 80, 68, 70])], "cv.pdf", { type: "application/pdf" }));
  const response = await fetch(`${rtcv.url}/api/v1/scraper/scanCVDocument`, {
    method: "POST",
    headers: { authorization: await rtcvAuthHeader(ID, DEFAULT_FAKE_KEY.apiKey) },
    body: form,
  });
  assert.deepEqual(await response.json(), { success: true, hasMatches: true });
  assert.equal(rtcv.receivedDocuments.length, 1);
  const [document] = rtcv.receivedDocuments;
  assert.deepEqual(document.metadata, { referenceNumber: "doc-1" });
  assert.equal(document.fileName, "cv.pdf");
  assert.equal(document.contentType, "application/pdf");
  assert.deepEqual([...document.bytes], [37, 80, 68, 70]);
});
