/**
 * parseCommandLine reads the most common line shape without JSON.parse; whatever path a line takes, the
 * result must be what JSON.parse would give.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../src/protocol/command_line.ts";

const lines = [
  '{"type":"ping"}',
  '{"type":"set_cached_reference","content":"abc-123"}',
  '{"type":"has_cached_reference","content":""}',
  '{"type":"has_cached_reference","content":"with space and ü and 😀"}',
  '{"type":"has_cached_reference","content":"a\\"b"}',
  '{"type":"has_cached_reference","content":"a\\\\b"}',
  '{"type":"has_cached_reference","content":"a\\u0041b"}',
  '{"type":"has_cached_reference","content":"a\\nb"}',
  '{"type":"has_cached_reference", "content":"spaced"}',
  '{"content":"first","type":"has_cached_reference"}',
  '{"type":"has_cached_reference","content":"x","extra":1}',
  '{"type":"Set_Cached","content":"x"}',
  '{"type":"send_cv","content":{"referenceNumber":"x"}}',
  '{"type":"set_cached_reference","content":5}',
];

Deno.test("every line parses to what JSON.parse gives, fast path or not", () => {
  for (const line of lines) {
    const value = JSON.parse(line);
    assert.deepEqual(parseCommandLine(line), { type: value.type, content: value.content }, line);
  }
});

Deno.test("a line that is not JSON but looks like the fast shape is still refused", () => {
  const broken = '{"type":"has_cached_reference","content":"a\tb"}'; // a raw tab inside a JSON string
  assert.throws(() => JSON.parse(broken));
  assert.equal(typeof parseCommandLine(broken), "string", "an error message, not a command");
});
