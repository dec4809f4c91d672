/**
 * The layers of `src/` keep to their side (CONTRIBUTING.md, "Layout"): the protocol's `CommandError` stays in
 * the command layer (services throw their own `ClientError` subclasses), the HTTP code shared by the RT-CV
 * and ingest clients is in `src/http/` and depends on neither, and no service is handed the whole core.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** Every TypeScript file under `src/`, as `{path relative to src/, text}`. */
async function sources(): Promise<{ path: string; text: string }[]> {
  const found: { path: string; text: string }[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const full = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(full);
      else if (entry.name.endsWith(".ts")) {
        found.push({ path: relative(SRC, full), text: await Deno.readTextFile(full) });
      }
    }
  };
  await walk(SRC.replace(/\/$/, ""));
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** The module specifiers a file imports (static and dynamic), as written. */
function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*)"([^"]+)"/g)].map((match) => match[1]);
}

Deno.test("CommandError is the command layer's: no service throws it, wraps into it or imports it", async () => {
  const offenders = (await sources())
    .filter(({ path }) => !path.startsWith("commands/"))
    .filter(({ text }) => /new CommandError|asCommandError|command_error\.ts/.test(text))
    .map(({ path }) => path);
  assert.deepEqual(offenders, []);
});

Deno.test("the HTTP code is in src/http/, used by the RT-CV and ingest clients, and depends on neither", async () => {
  const files = await sources();
  const http = files.filter(({ path }) => path.startsWith("http/"));
  assert.deepEqual(http.map(({ path }) => path), [
    "http/http_answers.ts",
    "http/in_flight_limiter.ts",
    "http/request_policy.ts",
  ]);
  for (const { path, text } of http) {
    const outward = importsOf(text).filter((specifier) =>
      /^\.\.\/(rtcv|ingest|commands|session|protocol)\//.test(specifier)
    );
    assert.deepEqual(outward, [], `${path} imports another layer`);
  }
  for (const client of ["rtcv/api_client.ts", "ingest/ingest_client.ts"]) {
    const text = files.find(({ path }) => path === client)!.text;
    assert.ok(importsOf(text).includes("../http/request_policy.ts"), `${client} uses src/http/`);
    assert.ok(importsOf(text).includes("../http/http_answers.ts"), `${client} uses src/http/`);
  }
  const ingestIntoRtcv = files
    .filter(({ path }) => path.startsWith("ingest/"))
    .filter(({ text }) => importsOf(text).some((specifier) => specifier.startsWith("../rtcv/")))
    .map(({ path }) => path);
  assert.deepEqual(ingestIntoRtcv, [], "ingest/ does not import from rtcv/");
});

Deno.test("no service is handed the whole ClientCore: only the program and replay know it", async () => {
  const users = (await sources())
    .filter(({ text }) => importsOf(text).some((specifier) => /(^|\/)client_core\.ts$/.test(specifier)))
    .map(({ path }) => path);
  assert.deepEqual(users, ["app.ts", "replay/replay.ts"]);
});

Deno.test("the program reads the backend through its interface, not by casting to LiveBackend", async () => {
  const app = (await sources()).find(({ path }) => path === "app.ts")!.text;
  assert.ok(!importsOf(app).includes("./rtcv/live_backend.ts"), "app.ts does not import LiveBackend");
  assert.doesNotMatch(app, /as LiveBackend|instanceof LiveBackend/);
});
