/**
 * Golden sessions: every `fixtures/<name>.jsonl` with a sibling `fixtures/<name>.expected.jsonl` is fed to the
 * client as it is (one write, then end of input), and the client's stdout must equal the expected file line by
 * line, the ready line included.
 *
 * Fixtures here are mock sessions: they must not need a server or a network. Each runs with a fresh store.
 * An expected file is written by hand or checked answer by answer against PROTOCOL.md, never copied blindly
 * from the output. Adding a command changes the "known types" list of unknown-command errors, so
 * `mock_session.expected.jsonl` must then be updated too.
 */
import assert from "node:assert/strict";
import { parseAnswer, REPO_ROOT, runSession, tempDir } from "./helpers/spawn_client.ts";

const FIXTURES = `${REPO_ROOT}fixtures`;
const EXPECTED_SUFFIX = ".expected.jsonl";

/** The fixture names (without `.jsonl`) that have an expected file. */
function fixtureNames(): string[] {
  const files = new Set(
    [...Deno.readDirSync(FIXTURES)].filter((entry) => entry.isFile).map((entry) => entry.name),
  );
  return [...files]
    .filter((name) => name.endsWith(".jsonl") && !name.endsWith(EXPECTED_SUFFIX))
    .map((name) => name.slice(0, -".jsonl".length))
    .filter((name) => files.has(name + EXPECTED_SUFFIX))
    .sort();
}

/** The lines of a text file, without a final empty line after the last `\n`. */
function linesOf(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

const names = fixtureNames();

Deno.test("the fixtures of the core are there", () => {
  for (const name of ["mock_session", "bad_input_session"]) {
    assert.ok(names.includes(name), `fixtures/${name}.jsonl with its expected file`);
  }
});

for (const name of names) {
  Deno.test(`fixture ${name}: the answers equal ${name}${EXPECTED_SUFFIX}`, async () => {
    const input = await Deno.readFile(`${FIXTURES}/${name}.jsonl`);
    const expected = linesOf(await Deno.readTextFile(`${FIXTURES}/${name}${EXPECTED_SUFFIX}`));
    const inputLines = linesOf(new TextDecoder().decode(input));
    assert.equal(
      expected.length,
      inputLines.length + 1,
      "an expected file holds the ready line and one answer per input line",
    );
    for (const line of expected) parseAnswer(line); // the expected file itself is made of protocol lines

    await using dir = await tempDir();
    const session = await runSession(input, { RTCV_SCRAPER_CLIENT_KV: `${dir.path}/store.kv` }, {
      cwd: dir.path,
    });
    assert.equal(session.code, 0, session.stderr);
    const actual = session.ready === null ? session.answers : [session.ready, ...session.answers];
    for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
      assert.equal(
        actual[i],
        expected[i],
        i === 0
          ? "the ready line"
          : `the answer to input line ${i}: ${JSON.stringify(inputLines[i - 1] ?? null)}`,
      );
    }
  });
}
