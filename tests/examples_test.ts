import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const examples = new URL("../examples/", import.meta.url);
const decoder = new TextDecoder();

async function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const output = await new Deno.Command(command, { args, cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_examples_test_" });
  try {
    await fn(dir);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "a mock session leaves no files behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The client's message for an empty reference number (its wording belongs to the client, not the example). */
const REFERENCE_ERROR = /^send_cv: .*referenceNumber/;

Deno.test("examples/mock_scraper.ts runs a mock session through mod.ts with only --allow-run", async () => {
  await inTempDir(async (dir) => {
    const script = fileURLToPath(new URL("mock_scraper.ts", examples));
    const result = await run(Deno.execPath(), ["run", "--no-prompt", "--allow-run", script], dir);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    const lines = result.stdout.split("\n");
    assert.match(lines[5], new RegExp(`^rejected: ${REFERENCE_ERROR.source.slice(1)}`));
    lines[5] = "rejected: <the client's message>";
    assert.deepEqual(lines, [
      "login: scraper",
      "sent vacancy-1: matched",
      "sent vacancy-2: matched",
      "skip vacancy-1: already scraped",
      "concurrent sends: true, true, false",
      "rejected: <the client's message>",
      "client exited with code 0",
      "",
    ]);
  });
});

Deno.test("examples/mock_session.sh pipes the same session into main.ts", async () => {
  await inTempDir(async (dir) => {
    const script = fileURLToPath(new URL("mock_session.sh", examples));
    const result = await run("bash", [script], dir, { DENO: Deno.execPath() });
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    const answers = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.equal(answers[7]?.type, "error");
    assert.match(answers[7].content, REFERENCE_ERROR);
    answers[7].content = "<the client's message>";
    assert.deepEqual(answers, [
      { type: "ready", content: "waiting for credentials" },
      { type: "ok" },
      { type: "ok", content: { username: "scraper", password: "hunter2" } },
      { type: "ok", content: false },
      { type: "ok", content: true },
      { type: "ok", content: true },
      { type: "ok", content: false },
      { type: "error", content: "<the client's message>" },
      { type: "pong" },
    ]);
  });
});

Deno.test("the examples type-check against mod.ts", async () => {
  // `deno run` does not type-check, so an API change that breaks the example would go unseen without this.
  const script = fileURLToPath(new URL("mock_scraper.ts", examples));
  const result = await run(Deno.execPath(), ["check", script], fileURLToPath(new URL("..", examples)));
  assert.equal(result.code, 0, result.stderr);
});

/** What the Python and Node examples print (the client's wording of the rejection replaced). */
function scraperLines(stdout: string): string[] {
  const lines = stdout.split("\n");
  const rejected = lines.findIndex((line) => line.startsWith("rejected: "));
  assert.ok(rejected !== -1, stdout);
  assert.match(lines[rejected], new RegExp(`^rejected: ${REFERENCE_ERROR.source.slice(1)}`));
  lines[rejected] = "rejected: <the client's message>";
  return lines;
}

Deno.test("examples/mock_scraper.py drives a mock session from Python", async () => {
  await inTempDir(async (dir) => {
    const script = fileURLToPath(new URL("mock_scraper.py", examples));
    const result = await run("python3", [script], dir, {
      DENO: Deno.execPath(),
      PATH: Deno.env.get("PATH") ?? "",
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(scraperLines(result.stdout), [
      "login: scraper",
      "sent vacancy-1: matched",
      "sent vacancy-2: matched",
      "skip vacancy-1: already scraped",
      "rejected: <the client's message>",
      "client exited with code 0",
      "",
    ]);
  });
});

Deno.test("examples/mock_scraper.mjs drives a mock session from Node, commands sent together included", async () => {
  await inTempDir(async (dir) => {
    const script = fileURLToPath(new URL("mock_scraper.mjs", examples));
    const result = await run("node", [script], dir, {
      DENO: Deno.execPath(),
      PATH: Deno.env.get("PATH") ?? "",
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(scraperLines(result.stdout), [
      "login: scraper",
      "sent vacancy-1: matched",
      "sent vacancy-2: matched",
      "skip vacancy-1: already scraped",
      "concurrent sends: true, true, false",
      "rejected: <the client's message>",
      "client exited with code 0",
      "",
    ]);
  });
});

Deno.test("examples/mock_session.sh falls back to npx -y deno@2.9.6 when there is no deno on PATH", async () => {
  const bin = await Deno.makeTempDir({ prefix: "rtcv_npx_only_" });
  try {
    // A PATH with the few tools the script uses and an npx that records its arguments, then runs the real
    // deno (the npm registry's deno package is the same program).
    const record = `${bin}/npx_args`;
    await Deno.writeTextFile(
      `${bin}/npx`,
      `#!/bin/sh\nprintf '%s\\n' "$@" > ${JSON.stringify(record)}\nshift 2\nexec ${
        JSON.stringify(Deno.execPath())
      } "$@"\n`,
    );
    await Deno.chmod(`${bin}/npx`, 0o755);
    const which = async (tool: string) => {
      const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "piped" })
        .output();
      return decoder.decode(found.stdout).trim();
    };
    await Deno.symlink(await which("dirname"), `${bin}/dirname`);
    const bash = await which("bash");
    await inTempDir(async (dir) => {
      const script = fileURLToPath(new URL("mock_session.sh", examples));
      const result = await run(bash, [script], dir, { PATH: bin });
      assert.equal(result.code, 0, result.stderr);
      const answers = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.equal(answers.length, 9, result.stdout);
      assert.deepEqual(answers.at(-1), { type: "pong" });
    });
    assert.deepEqual((await Deno.readTextFile(record)).split("\n").slice(0, 4), [
      "-y",
      "deno@2.9.6",
      "run",
      "-A",
    ]);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});
