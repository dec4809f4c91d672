/**
 * `mod.ts` imported from anywhere: by a file URL from a directory without a `deno.json`, and by an http URL
 * (a local file server standing in for a Git host). In both cases `ScraperClient.spawn()`'s default command
 * must start the client with its own import map and the Kv flag, not the caller's configuration.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCommand } from "../src/module/scraper_client.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const decoder = new TextDecoder();

/** A scraper as a user writes it: imports mod.ts from `modUrl`, runs a mock session, prints the answers. */
function scraperSource(modUrl: string): string {
  return `import { ScraperClient } from ${JSON.stringify(modUrl)};
await using client = await ScraperClient.spawn({ env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" } });
await client.setMock();
const sent = await client.sendCv({ referenceNumber: "anywhere-1" });
const again = await client.sendCv({ referenceNumber: "anywhere-1" });
await client.ping();
await Deno.stdout.write(new TextEncoder().encode(JSON.stringify({ sent, again }) + "\\n"));
`;
}

async function runScraper(dir: string, flags: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-run", ...flags, join(dir, "scraper.ts")],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

Deno.test("the default command passes the client's own deno.json and the Kv flag", () => {
  const fromFile = defaultCommand(new URL("../src/module/scraper_client.ts", import.meta.url));
  assert.deepEqual(fromFile.slice(1), [
    "run",
    "-A",
    "--unstable-kv",
    "--config",
    join(root, "deno.json"),
    join(root, "main.ts"),
  ]);
  const fromUrl = defaultCommand("https://example.com/rtcv/src/module/scraper_client.ts");
  assert.deepEqual(fromUrl.slice(1), [
    "run",
    "-A",
    "--unstable-kv",
    "--no-config",
    "--import-map",
    "https://example.com/rtcv/deno.json",
    "https://example.com/rtcv/main.ts",
  ]);
});

Deno.test("mod.ts by file URL from a directory without deno.json: spawn() runs the client", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_mod_file_" });
  try {
    await Deno.writeTextFile(
      join(dir, "scraper.ts"),
      scraperSource(new URL("../mod.ts", import.meta.url).href),
    );
    const result = await runScraper(dir, []);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '{"sent":true,"again":false}\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mod.ts by http URL: spawn() makes deno run fetch the remote main.ts with its import map", async () => {
  const requested: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    requested.push(path);
    const file = join(root, path);
    if (!file.startsWith(root) || path.includes("..")) return new Response("no", { status: 403 });
    try {
      const body = await Deno.readFile(file);
      const type = path.endsWith(".json") ? "application/json" : "application/typescript";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const dir = await Deno.makeTempDir({ prefix: "rtcv_mod_http_" });
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    await Deno.writeTextFile(join(dir, "scraper.ts"), scraperSource(`http://${host}/mod.ts`));
    const result = await runScraper(dir, [`--allow-import=${host}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '{"sent":true,"again":false}\n');
    for (const path of ["/mod.ts", "/deno.json", "/main.ts", "/src/app.ts"]) {
      assert.ok(requested.includes(path), `${path} was fetched (fetched: ${requested.join(", ")})`);
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
