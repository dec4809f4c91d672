/**
 * `send_cv_document` (PROTOCOL.md section 8) on the line protocol: multipart to scanCVDocument on the primary
 * (checked at the fake: parts, file name, content type, bytes), the cache first, mirrors only after the primary
 * accepted the document, and clear errors naming the file.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { rtcvAuthHeader, startFakeRtcv } from "./fake_rtcv.ts";
import { credentialsLine, error, liveDir, ok, startLiveClient, waitFor } from "./live_helpers.ts";

const DOCUMENT_ROUTE = "/api/v1/scraper/scanCVDocument";
const PDF = new TextEncoder().encode("%PDF-1.4\n\u0000\u00ff binary bytes\n%%EOF");

Deno.test("a document goes to the primary as multipart metadata + cv.pdf; a match is cached; mirrors get it after the primary accepted it", async () => {
  await using primary = await startFakeRtcv({ hasMatches: (cv) => cv.referenceNumber !== "doc-nomatch" });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  const file = join(dir.path, "resume.pdf");
  await Deno.writeFile(file, PDF);
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));

  assert.equal(
    await ok(client, {
      type: "send_cv_document",
      content: { cv: { reference_number: "doc-1", presentation: "p" }, file },
    }),
    true,
  );
  assert.equal(primary.receivedDocuments.length, 1);
  const [sent] = primary.receivedDocuments;
  assert.deepEqual(sent.metadata, { presentation: "p", referenceNumber: "doc-1" }, "the alias is applied");
  assert.equal(sent.fileName, "cv.pdf");
  assert.equal(sent.contentType, "application/pdf");
  assert.deepEqual(sent.bytes, PDF);
  const key = primary.keys[0];
  assert.equal(
    primary.requestsTo(DOCUMENT_ROUTE)[0].authorization,
    await rtcvAuthHeader(key.apiKeyId, key.apiKey),
  );
  assert.match(primary.requestsTo(DOCUMENT_ROUTE)[0].contentType ?? "", /^multipart\/form-data; boundary=/);
  await waitFor(() => mirror.receivedDocuments.length === 1, 5000, "the mirror gets the document");
  assert.deepEqual(mirror.receivedDocuments[0].bytes, PDF);
  assert.equal(mirror.receivedDocuments[0].fileName, "cv.pdf");

  // Cached after the match: false, nothing sent, the file not even read.
  assert.equal(
    await ok(client, {
      type: "send_cv_document",
      content: { cv: { referenceNumber: "doc-1" }, file: "/gone" },
    }),
    false,
  );
  assert.equal(await ok(client, { type: "has_cached_reference", content: "doc-1" }), true);

  // Base64 and a content type; no match: not cached.
  const base64 = btoa(String.fromCharCode(...PDF));
  const content = {
    cv: { referenceNumber: "doc-nomatch" },
    file_base64: base64,
    content_type: "application/msword",
  };
  assert.equal(await ok(client, { type: "send_cv_document", content }), false);
  assert.equal(primary.receivedDocuments[1].contentType, "application/msword");
  assert.deepEqual(primary.receivedDocuments[1].bytes, PDF);
  assert.equal(await ok(client, { type: "has_cached_reference", content: "doc-nomatch" }), false);
  await waitFor(() => mirror.receivedDocuments.length === 2, 5000, "the mirror gets the second document");
  assert.deepEqual(await ok(client, { type: "send_cv_document_outcome", content }), {
    sent: true,
    matched: false,
  });
  const { status } = await client.finish();
  assert.equal(status.code, 0);
});

Deno.test("a matched document's mirror copy and cache entry are committed in one commit", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir, {
    RTCV_SCRAPER_CLIENT_DRAIN_MS: "0",
    RTCV_SCRAPER_CLIENT_TIMEOUT_MS: "60000", // the mirror's request hangs: no timeout rewrites the copy
  });
  await ok(client, credentialsLine(primary, [mirror]));
  mirror.hang = true; // the copy stays as it was committed (its delivery hangs)
  const content = { cv: { referenceNumber: "doc-one-commit" }, file_base64: btoa("%PDF-1.4 one") };
  assert.equal(await ok(client, { type: "send_cv_document", content }), true);
  await waitFor(() => mirror.requestsTo(DOCUMENT_ROUTE).length === 1, 5000, "the copy is in flight");
  const kv = await Deno.openKv(dir.kv);
  try {
    const [copy, ...others] = await Array.fromAsync(kv.list({ prefix: ["outbox", "entry"] }));
    assert.equal(others.length, 0);
    const cached = await kv.get(["ref", "doc-one-commit"]);
    assert.ok(cached.versionstamp !== null, "cached");
    assert.equal(cached.versionstamp, copy.versionstamp, "one commit wrote both");
  } finally {
    kv.close();
  }
});

Deno.test("a document the primary refuses is an error and never reaches the mirrors", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  primary.failNext(1, 400, { error: "referenceNumber must be set" }, { route: DOCUMENT_ROUTE });
  const base64 = btoa("%PDF-1.4 x");
  assert.match(
    await error(client, {
      type: "send_cv_document",
      content: { cv: { referenceNumber: "refused" }, file_base64: base64 },
    }),
    /^send_cv_document: primary http:\/\/127\.0\.0\.1:\d+ answered 400: referenceNumber must be set$/,
  );
  assert.equal(
    await ok(client, {
      type: "send_cv_document",
      content: { cv: { referenceNumber: "accepted" }, file_base64: base64 },
    }),
    true,
  );
  await waitFor(() => mirror.receivedDocuments.length >= 1, 5000, "the accepted document reaches the mirror");
  assert.deepEqual(mirror.receivedDocuments.map((document) => document.metadata.referenceNumber), [
    "accepted",
  ]);
  await client.finish();
});

Deno.test("documents that cannot be sent: errors name the file or the field, and the client keeps serving", async () => {
  await using primary = await startFakeRtcv();
  await using dir = await liveDir();
  const empty = join(dir.path, "empty.pdf");
  const big = join(dir.path, "big.pdf");
  await Deno.writeFile(empty, new Uint8Array(0));
  await Deno.writeFile(big, new Uint8Array(3000));
  await using client = await startLiveClient(dir, { RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES: "2000" });
  await ok(client, credentialsLine(primary));
  const send = (content: unknown) => error(client, { type: "send_cv_document", content });
  const cv = { referenceNumber: "bad-doc" };
  const missing = join(dir.path, "missing.pdf");
  assert.equal(
    await send({ cv, file: missing }),
    `send_cv_document: cannot read the document "${missing}": it does not exist`,
  );
  assert.equal(await send({ cv, file: empty }), `send_cv_document: the document "${empty}" is empty`);
  assert.match(
    await send({ cv, file: big }),
    new RegExp(`the document "${big}" has 3000 bytes, more than the limit of 2000`),
  );
  assert.match(await send({ cv, file: dir.path }), /it is not a file/);
  assert.match(await send({ cv, file: empty, file_base64: "eA==" }), /either file \(a path\) or file_base64/);
  assert.match(await send({ cv }), /either file \(a path\) or file_base64/);
  assert.match(await send({ cv, file_base64: "not base64!" }), /content\.file_base64 is not valid base64/);
  assert.match(
    await send({ cv: { presentation: "x" }, file: empty }),
    /content\.cv\.referenceNumber must be a non-empty string/,
  );
  assert.match(
    await send({ cv, file_base64: "eA==", content_type: "pdf" }),
    /content\.content_type must be a content type/,
  );
  assert.match(await send("file.pdf"), /^send_cv_document: content must be an object like/);
  assert.equal(primary.receivedDocuments.length, 0);
  assert.deepEqual(await client.request({ type: "ping" }), { type: "pong" });
  await client.finish();
});

Deno.test("mock mode: a document answers true and is cached, the second time false", async () => {
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  await ok(client, { type: "set_mock" });
  const content = { cv: { referenceNumber: "mock-doc" }, file_base64: btoa("%PDF") };
  assert.equal(await ok(client, { type: "send_cv_document", content }), true);
  assert.equal(await ok(client, { type: "send_cv_document", content }), false);
  await client.finish();
});

Deno.test("a document of 1.5 MiB reaches the primary and, through the outbox, the mirror byte for byte", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  const bytes = new Uint8Array(1.5 * 1024 * 1024);
  for (let offset = 0; offset < bytes.length; offset += 65_536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65_536));
  }
  const file = join(dir.path, "big.pdf");
  await Deno.writeFile(file, bytes);
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  assert.equal(
    await ok(client, { type: "send_cv_document", content: { cv: { referenceNumber: "big" }, file } }),
    true,
  );
  assert.deepEqual(primary.receivedDocuments[0].bytes, bytes);
  await waitFor(() => mirror.receivedDocuments.length === 1, 10_000, "the mirror gets the big document");
  assert.deepEqual(mirror.receivedDocuments[0].bytes, bytes);
  await client.finish();
});

Deno.test("a document waiting for a mirror that is down is delivered to its document route after a restart", async () => {
  await using primary = await startFakeRtcv({ hasMatches: true });
  await using mirror = await startFakeRtcv();
  await using dir = await liveDir();
  mirror.failNext(Infinity, 503, { error: "down" }, { route: DOCUMENT_ROUTE, retryAfter: "0" });
  {
    await using client = await startLiveClient(dir);
    await ok(client, credentialsLine(primary, [mirror]));
    const content = { cv: { referenceNumber: "later" }, file_base64: btoa("%PDF later") };
    assert.equal(await ok(client, { type: "send_cv_document", content }), true);
    await waitFor(() => mirror.requestsTo(DOCUMENT_ROUTE).length >= 1, 5000, "the mirror is tried");
    const { status } = await client.finish();
    assert.equal(status.code, 0);
  }
  assert.equal(mirror.receivedDocuments.length, 0);
  mirror.clearFailures();
  await using client = await startLiveClient(dir);
  await ok(client, credentialsLine(primary, [mirror]));
  await waitFor(
    () => mirror.receivedDocuments.length === 1,
    10_000,
    "the document reaches the mirror after the restart",
  );
  assert.equal(new TextDecoder().decode(mirror.receivedDocuments[0].bytes), "%PDF later");
  assert.equal(mirror.receivedDocuments[0].fileName, "cv.pdf");
  assert.equal(primary.receivedDocuments.length, 1, "the primary got it once");
  await client.finish();
});
