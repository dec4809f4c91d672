/**
 * Benchmark of the ingestion sink: 100,000 job items sent as pipelined `store_data` lines of 100 items
 * to a client process, delivered to a local fake ingest server, then `flush_data`.
 *
 * Run from the repository root: `deno run -A bench/ingest_bench.ts [--items N] [--dedupe] [--target T]`.
 * `--target main` runs `main.ts` (needs the sink wired into the program), `--target child` a minimal
 * line server built here from `ClientCore` + `installIngest` (the same code path below the program),
 * `auto` (default) takes `main.ts` when it knows `set_ingest`.
 *
 * Reported: wall time from the first input byte to the last `store_data` answer (every item committed
 * to the store before its answer), to the last batch acknowledged by the server, and to the
 * `flush_data` answer; the server's batch count; the client's peak RSS.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const TOKEN = "bench-ingest-token";
const ITEMS_PER_LINE = 100;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The client side for `--target child`: the ingest sink on a ClientCore behind the line server. */
async function runChild(): Promise<void> {
  const { ClientCore } = await import("../src/client_core.ts");
  const { systemClock } = await import("../src/clock.ts");
  const { installIngest } = await import("../src/ingest/install_ingest.ts");
  const { AnswerWriter } = await import("../src/protocol/answer_writer.ts");
  const { READY_ANSWER } = await import("../src/protocol/answers.ts");
  const { serveLines } = await import("../src/protocol/serve_lines.ts");
  const warn = (message: string) => Deno.stderr.writeSync(encoder.encode(`child: ${message}\n`));
  const core = new ClientCore({
    kvLocation: Deno.env.get("RTCV_SCRAPER_CLIENT_KV")!,
    clock: systemClock(),
    warn,
  });
  const ingest = installIngest(core, { timeoutMs: 20_000, ingest: null, warn });
  const writer = new AnswerWriter(Deno.stdout);
  writer.push(READY_ANSWER);
  writer.flush();
  await serveLines(Deno.stdin, writer, {
    maxLineBytes: 16 * 1024 * 1024,
    answer: (line) => core.registry.dispatch(line),
  });
  await ingest.close();
  await core.close();
}

/** The fake ingest server: counts distinct items and notes when the last one arrived. */
class BenchServer {
  readonly ids = new Set<string>();
  items = 0;
  batches = 0;
  maxBatch = 0;
  lastAckAt = 0;
  outOfOrder = 0;
  #lastSeq = -1;
  readonly url: string;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => this.#handle(request),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  async #handle(request: Request): Promise<Response> {
    if (request.headers.get("token") !== TOKEN) {
      return Response.json({ msg: "invalid token" }, { status: 401 });
    }
    const body = await request.json() as { data_list: { job_id: string; seq: number }[] };
    this.batches++;
    this.maxBatch = Math.max(this.maxBatch, body.data_list.length);
    for (const item of body.data_list) {
      this.ids.add(item.job_id);
      if (item.seq !== this.#lastSeq + 1) this.outOfOrder++;
      this.#lastSeq = item.seq;
    }
    this.items += body.data_list.length;
    this.lastAckAt = performance.now();
    return Response.json({ code: 200, msg: "OK", data: null });
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }
}

function jobItem(run: string, index: number): Record<string, unknown> {
  return {
    job_id: `${run}-${index}`,
    seq: index,
    job_name: "高级软件工程师 (Deno / TypeScript)",
    company_name: "示例科技有限公司",
    salary: "25-40K·14薪",
    city: "上海",
    district: "浦东新区",
    experience: "3-5年",
    education: "本科",
    tags: ["TypeScript", "Deno", "SQLite"],
    publish_time: "2026-03-21 10:00:00",
    url: `https://example.invalid/job/${run}/${index}`,
  };
}

/** Reads answer lines from the child's stdout as they come. */
class AnswerReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async line(): Promise<string> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("the client closed stdout");
      this.#buffer += decoder.decode(value, { stream: true });
    }
  }

  release(): void {
    this.#reader.releaseLock();
  }
}

async function runBench(): Promise<void> {
  const args = parseArgs({
    args: Deno.args,
    options: {
      items: { type: "string", default: "100000" },
      dedupe: { type: "boolean", default: false },
      target: { type: "string", default: "auto" },
      runs: { type: "string", default: "1" },
    },
  });
  const total = Number(args.values.items);
  const runs = Number(args.values.runs);
  let target = args.values.target;
  if (target === "auto") target = await mainKnowsIngest() ? "main" : "child";
  for (let run = 1; run <= runs; run++) {
    await benchOnce(total, args.values.dedupe, target);
  }
}

function command(target: string, kvPath: string, cwd: string): Deno.ChildProcess {
  const args = target === "main"
    ? ["run", "-A", "--config", join(REPO, "deno.json"), join(REPO, "main.ts")]
    : ["run", "-A", "--config", join(REPO, "deno.json"), fileURLToPath(import.meta.url), "--child"];
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { RTCV_SCRAPER_CLIENT_KV: kvPath },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function mainKnowsIngest(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "ingest_bench_probe_" });
  const child = command("main", join(dir, "probe.kv"), dir);
  const reader = new AnswerReader(child.stdout);
  const writer = child.stdin.getWriter();
  try {
    await reader.line();
    await writer.write(encoder.encode('{"type":"ingest_status"}\n'));
    const answer = await reader.line();
    return !answer.includes("unknown command type");
  } finally {
    await writer.close();
    reader.release();
    await child.stdout.cancel();
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

async function benchOnce(total: number, dedupe: boolean, target: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ingest_bench_" });
  const server = new BenchServer();
  const kvPath = join(dir, "bench.kv");
  const child = command(target, kvPath, dir);
  const reader = new AnswerReader(child.stdout);
  const writer = child.stdin.getWriter();
  try {
    const ready = await reader.line();
    if (!ready.includes('"ready"')) throw new Error(`expected the ready line, got ${ready.slice(0, 200)}`);
    await writer.write(encoder.encode(
      JSON.stringify({ type: "set_ingest", content: { base_url: server.url, token: TOKEN } }) + "\n",
    ));
    const configured = await reader.line();
    if (configured !== '{"type":"ok"}') throw new Error(`set_ingest answered ${configured.slice(0, 200)}`);

    const runId = `bench-${Date.now()}`;
    const chunks: Uint8Array[] = [];
    let lines = 0;
    for (let start = 0; start < total; start += ITEMS_PER_LINE) {
      const items = Array.from(
        { length: Math.min(ITEMS_PER_LINE, total - start) },
        (_, i) => jobItem(runId, start + i),
      );
      const content: Record<string, unknown> = { data_type: "job", platform: "boss", items };
      if (dedupe) content.dedupe_key = "job_id";
      chunks.push(encoder.encode(JSON.stringify({ type: "store_data", content }) + "\n"));
      lines++;
    }
    chunks.push(encoder.encode('{"type":"flush_data"}\n'));
    const inputBytes = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);

    const startedAt = performance.now();
    const writing = (async () => {
      for (const chunk of chunks) await writer.write(chunk);
    })();
    let queued = 0;
    let bad = "";
    for (let i = 0; i < lines; i++) {
      const line = await reader.line();
      const answer = JSON.parse(line) as { type: string; content?: { queued?: number } };
      if (answer.type !== "ok" || typeof answer.content?.queued !== "number") bad ||= line.slice(0, 200);
      else queued += answer.content.queued;
    }
    const answeredAt = performance.now();
    const flush = await reader.line();
    const flushedAt = performance.now();
    await writing;

    const ms = (at: number) => `${(at - startedAt).toFixed(0)} ms`;
    const rss = peakRssMiB(child.pid);
    print(
      [
        `ingest bench (${target}${dedupe ? ", dedupe_key" : ""}): ${total} items in ${lines} lines, ` +
        `${(inputBytes / 1048576).toFixed(1)} MiB of input`,
        `  all store_data answered (items committed):  ${ms(answeredAt)}`,
        `  last batch acknowledged by the server:       ${
          server.lastAckAt > 0 ? ms(server.lastAckAt) : "never"
        }`,
        `  flush_data answered:                         ${ms(flushedAt)}  ${flush}`,
        `  server: ${server.items} items (${server.ids.size} distinct) in ${server.batches} batches, ` +
        `largest ${server.maxBatch}, out of order ${server.outOfOrder}`,
        `  queued ${queued}${bad ? `; bad answer: ${bad}` : ""}; client peak RSS ${rss} MiB`,
      ].join("\n"),
    );
    const ok = bad === "" && queued === total && server.ids.size === total && server.outOfOrder === 0 &&
      flush.includes('"pending":0');
    if (!ok) print("  FAILED: not every item was queued and delivered exactly once, in order");
  } finally {
    await writer.close().catch(() => {});
    reader.release();
    await child.stdout.cancel().catch(() => {});
    await child.status;
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function peakRssMiB(pid: number): string {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const peak = /VmHWM:\s+(\d+) kB/.exec(status);
    return peak ? (Number(peak[1]) / 1024).toFixed(0) : "?";
  } catch {
    return "?";
  }
}

/** Prints a report line on stdout. */
function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

if (Deno.args.includes("--child")) {
  await runChild();
} else {
  await runBench();
}
