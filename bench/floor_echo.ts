/**
 * The floor: the smallest Deno program that speaks enough of the protocol to be benchmarked like the
 * client. It writes the ready line, then answers every input line with `{"type":"pong"}`, one write per
 * read. Its start-up time, lockstep round trip and RSS show what `deno run` and this driver cost by
 * themselves, so the client's figures can be read as "floor + client work".
 *
 * Run: `deno run bench/floor_echo.ts`. With `fetch <url> <authorization>` (and `--allow-net`) it POSTs each
 * input line to `<url>` as the body instead, and answers `{"type":"ok"}` once the answer is read: the floor of
 * a child process that makes one request per line, as `send_cv` does.
 *
 * @module
 */

const encoder = new TextEncoder();
const READY = encoder.encode('{"type":"ready","content":"waiting for credentials"}\n');
const PONG = '{"type":"pong"}\n';

async function writeAll(bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await Deno.stdout.write(bytes.subarray(offset));
}

const OK = encoder.encode('{"type":"ok"}\n');
const [mode, url, authorization] = Deno.args;
const decoder = new TextDecoder();
let partial = "";

/** Fetch mode: one POST per complete line of `chunk`, in order, each answered when its body is read. */
async function fetchLines(chunk: Uint8Array): Promise<void> {
  const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
  partial = lines.pop()!;
  const headers = { authorization, "content-type": "application/json" };
  for (const body of lines) {
    await (await fetch(url, { method: "POST", headers, body })).arrayBuffer();
    await writeAll(OK);
  }
}

await writeAll(READY);
const buffer = new Uint8Array(64 * 1024);
for (;;) {
  const count = await Deno.stdin.read(buffer);
  if (count === null) break;
  const chunk = buffer.subarray(0, count);
  if (mode === "fetch") {
    await fetchLines(chunk);
    continue;
  }
  let lines = 0;
  for (let index = chunk.indexOf(0x0a); index !== -1; index = chunk.indexOf(0x0a, index + 1)) lines++;
  if (lines > 0) await writeAll(encoder.encode(PONG.repeat(lines)));
}
