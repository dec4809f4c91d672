/**
 * Answer ids (PROTOCOL.md section 9): a line with an `id` is answered as soon as it is ready, with that id;
 * lines without one keep their order and never wait for lines with ids.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/protocol/command_line.ts";
import { startFakeRtcv } from "./fake_rtcv.ts";
import { OK, OK_FALSE, PONG, READY_LINE, runSession } from "./helpers/spawn_client.ts";
import { liveDir, server, startLiveClient } from "./live_helpers.ts";

const sendCv = (reference: string, id?: unknown) =>
  JSON.stringify({
    type: "send_cv",
    content: { referenceNumber: reference },
    ...(id === undefined ? {} : { id }),
  });

Deno.test("a slow send_cv with an id does not hold up a has_cached_reference after it", async () => {
  await using fake = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  assert.equal(
    await client.request({ type: "set_credentials", content: server(fake) }).then((a) => a.type),
    "ok",
  );
  fake.latencyMs = 400;
  await client.sendRaw(
    [
      sendCv("ids-slow", "cv-1"),
      '{"type":"has_cached_reference","content":"ids-other"}',
      '{"type":"ping","id":7}',
    ].join("\n") + "\n",
  );
  const answers = await client.readLines(3);
  assert.equal(answers[answers.length - 1], '{"type":"ok","content":false,"id":"cv-1"}', answers.join("\n"));
  assert.deepEqual(new Set(answers.slice(0, 2)), new Set([OK_FALSE, '{"type":"pong","id":7}']));
});

Deno.test("without ids the input order holds: a slow send_cv is answered before the lines after it", async () => {
  await using fake = await startFakeRtcv();
  await using dir = await liveDir();
  await using client = await startLiveClient(dir);
  assert.equal(
    await client.request({ type: "set_credentials", content: server(fake) }).then((a) => a.type),
    "ok",
  );
  fake.latencyMs = 200;
  await client.sendRaw(
    [sendCv("order-slow"), '{"type":"has_cached_reference","content":"order-x"}', '{"type":"ping"}'].join(
      "\n",
    ) +
      "\n",
  );
  assert.deepEqual(await client.readLines(3), [OK_FALSE, OK_FALSE, PONG]);
});

Deno.test("ids on session-changing lines: later lines still start after them; a bad id is an error without id, in order", async () => {
  const session = await runSession([
    '{"type":"set_mock","id":"m"}',
    '{"type":"send_cv","content":{"referenceNumber":"after-mock"}}',
    '{"type":"ping","id":{"no":1}}',
    '{"type":"ping","id":null}',
    '{"type":"ping"}',
  ]);
  assert.equal(session.code, 0, session.stderr);
  assert.equal(session.ready, READY_LINE);
  const answers = session.answers;
  assert.ok(answers.includes('{"type":"ok","id":"m"}'), answers.join("\n"));
  const unnumbered = answers.filter((line) => !line.includes('"id"'));
  assert.deepEqual(unnumbered, [
    '{"type":"ok","content":true}', // set_mock was done before send_cv started
    `{"type":"error","content":"input line's \\"id\\" must be a string or a number, got an object"}`,
    `{"type":"error","content":"input line's \\"id\\" must be a string or a number, got null"}`,
    PONG,
  ]);
});

Deno.test("parsing: ids are read from JSON lines; plain lines keep the fast path and have none", () => {
  assert.deepEqual(parseCommandLine('{"type":"ping","id":"a"}'), {
    type: "ping",
    content: undefined,
    id: "a",
  });
  assert.deepEqual(parseCommandLine('{"id":3,"type":"has_cached_reference","content":"x"}'), {
    type: "has_cached_reference",
    content: "x",
    id: 3,
  });
  assert.deepEqual(parseCommandLine('{"type":"has_cached_reference","content":"x"}'), {
    type: "has_cached_reference",
    content: "x",
  });
  assert.equal(typeof parseCommandLine('{"type":"ping","id":[1]}'), "string");
  assert.equal(typeof parseCommandLine('{"type":"ping","id":true}'), "string");
  assert.equal(OK, '{"type":"ok"}');
});
