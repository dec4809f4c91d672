/**
 * The quick tests that let common lines skip their zod schema must accept only what the schema passes
 * with the same content; anything else still goes through the schema.
 */
import assert from "node:assert/strict";
import { isReferenceNumber, referenceNumberSchema } from "../src/commands/cache_commands.ts";
import { cvSchema, isPlainCv } from "../src/commands/cv_commands.ts";

const values: unknown[] = [
  "a",
  "123",
  " ",
  "x".repeat(20_000),
  "日本",
  "",
  0,
  12,
  null,
  undefined,
  true,
  [],
  ["a"],
  { a: 1 },
  new String("boxed"),
  { referenceNumber: "r1" },
  { referenceNumber: "r1", name: "x", nested: { a: [1, 2] } },
  { referenceNumber: "" },
  { referenceNumber: 5 },
  { reference_number: "r2" },
  { referenceNumber: "r3", reference_number: "r4" },
  [{ referenceNumber: "r5" }],
  JSON.parse('{"referenceNumber":"r6","__proto__":{"x":1}}'),
];

for (
  const [name, quick, schema] of [
    ["reference numbers", isReferenceNumber, referenceNumberSchema],
    ["CVs", isPlainCv, cvSchema],
  ] as const
) {
  Deno.test(`the quick test of ${name} accepts only what the schema passes with the same content`, () => {
    for (const value of values) {
      const parsed = schema.safeParse(value);
      const shown = JSON.stringify(value) ?? String(value);
      if (quick(value)) {
        assert.ok(parsed.success, `${shown}: accepted by the quick test only`);
        if (typeof value === "string") assert.equal(parsed.data, value);
        else assert.deepEqual(JSON.stringify(parsed.data), JSON.stringify(value), shown);
      }
    }
    assert.ok(values.some((value) => quick(value)), "the quick test takes the common shape");
  });
}
