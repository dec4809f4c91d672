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

Deno.test("lines after one of the same type (the prefix path) parse to what JSON.parse gives, or are refused", () => {
  const type = "has_cached_reference";
  const start = `{"type":"${type}","content":"`;
  const after = [
    `${start}plain-1"}`,
    `${start}"}`,
    `${start}a\\"b"}`,
    `${start}a\\\\b"}`,
    `${start}a"}"}`,
    `${start}a"} `,
    `${start}a","extra":"b"}`,
    `${start}with space and ü and 😀"}`,
    `${start}a\\u0041b"}`,
    `{"type":"${type}","content":"x"}`,
    `{"type":"${type}_more","content":"x"}`,
    `{"type":"${type}","content":"x"}`,
  ];
  const refused = [`${start}}`, `${start}"`, `${start}a\tb"}`, `${start}"}"}`];
  for (const line of [...after, ...refused]) {
    assert.deepEqual(parseCommandLine(`${start}warm-up"}`), { type, content: "warm-up" }); // the same type before
    let value: { type: unknown; content: unknown } | undefined;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    const parsed = parseCommandLine(line);
    if (value === undefined) assert.equal(typeof parsed, "string", `refused: ${line}`);
    else assert.deepEqual(parsed, { type: value.type, content: value.content }, line);
  }
});
