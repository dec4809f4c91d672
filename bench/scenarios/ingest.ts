/**
 * Scenario 6c: 100,000 job items through the ingestion sink (`set_ingest`, `store_data`, `flush_data`) to a
 * local fake ingest server on 127.0.0.1. Reports `skip` while the client does not know `set_ingest`.
 *
 * @module
 */

import { encodeLines, LineCollector } from "../answers.ts";
import { check, formatNumber, info, measured, type Row, skipped } from "../report.ts";
import type { Scenario } from "../scenario.ts";
import { answerMessage, count, spawnReady, timeExit } from "./common.ts";

const TOKEN = "bench-ingest-token";
const ITEMS_PER_LINE = 100;

/** A fake of the ingest server's batch route: counts distinct items by `job_id`. */
class FakeIngest {
  readonly ids = new Set<string>();
  items = 0;
  batches = 0;
  rejected = 0;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => this.#handle(request),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  async #handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method !== "POST" || path !== "/api/v1/universal/data/batch-store-async") {
      return Response.json({ error: "route not found" }, { status: 404 });
    }
    if (request.headers.get("token") !== TOKEN) {
      this.rejected++;
      return Response.json({ error: "invalid token" }, { status: 401 });
    }
    const body = await request.json() as { data_list?: { job_id?: string }[] };
    const list = body.data_list ?? [];
    this.batches++;
    this.items += list.length;
    for (const item of list) if (typeof item.job_id === "string") this.ids.add(item.job_id);
    return Response.json({ code: 200, msg: "ok", data: { received: list.length } });
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }
}

function jobItem(run: string, index: number): Record<string, unknown> {
  return {
    job_id: `${run}-${index}`,
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

/** Scenario 6c: pipelined store_data of 100k items, then flush_data; all must reach the server. */
export const ingestScenario: Scenario = ingestVariant("ingest", "6c", undefined);

/** Scenario 6d: as 6c with `dedupe_key` on every line (every item is checked against the dedupe index). */
export const ingestDedupeScenario: Scenario = ingestVariant("ingest_dedupe", "6d", "job_id");

function ingestVariant(id: string, alias: string, dedupeKey: string | undefined): Scenario {
  return {
    id,
    alias,
    title: `100k ingest items (store_data x100 items, pipelined${
      dedupeKey ? `, dedupe_key ${dedupeKey}` : ""
    }) until flush_data says delivered`,
    peer: false,
    timeoutMs: 120_000,
    async run(context) {
      const total = count(context, 100_000, 10_000);
      const metric = `${total / 1000}k items: first byte to flush_data answer`;
      const max = 2000 * total / 100_000;
      const server = new FakeIngest();
      const { client } = await spawnReady(context);
      try {
        const setAnswer = await client.request(
          JSON.stringify({ type: "set_ingest", content: { base_url: server.url, token: TOKEN } }) + "\n",
        );
        if (setAnswer !== '{"type":"ok"}') {
          return [skipped("ingest", metric, `set_ingest answered: ${answerMessage(setAnswer)}`, "ms", max)];
        }
        const run = `bench-${Date.now()}`;
        const lines: string[] = [];
        for (let start = 0; start < total; start += ITEMS_PER_LINE) {
          const items = Array.from({ length: ITEMS_PER_LINE }, (_, i) => jobItem(run, start + i));
          lines.push(
            JSON.stringify({
              type: "store_data",
              content: { data_type: "job", platform: "boss", items, dedupe_key: dedupeKey },
            }) +
              "\n",
          );
        }
        lines.push('{"type":"flush_data"}\n');
        const input = encodeLines(lines);
        const answers = new LineCollector(lines.length);
        const timing = await client.pipeline(input, answers);
        const wallMs = timing.finishedAt - timing.startedAt;

        let queued = 0;
        let bad = "";
        for (const line of answers.lines.slice(0, -1)) {
          const answer = JSON.parse(line) as { type: string; content?: { queued?: number } };
          if (answer.type !== "ok" || typeof answer.content?.queued !== "number") bad ||= line.slice(0, 160);
          else queued += answer.content.queued;
        }
        const flush = answers.lines[answers.lines.length - 1];
        const flushed = JSON.parse(flush) as {
          type: string;
          content?: { delivered?: number; pending?: number };
        };
        const rows: Row[] = [
          measured(
            id,
            metric,
            wallMs,
            "ms",
            max,
            `${
              (input.length / 1048576).toFixed(1)
            } MiB in ${lines.length} lines; server got ${server.batches} batches`,
          ),
          check(
            id,
            "store_data answers",
            bad === "" && queued === total,
            bad || `queued ${queued} of ${total}`,
          ),
          check(
            id,
            "all delivered at flush_data",
            flushed.type === "ok" && flushed.content?.pending === 0 && server.ids.size === total,
            `flush_data: ${
              flush.slice(0, 160)
            }; server holds ${server.ids.size} distinct of ${server.items} items`,
          ),
          info(
            id,
            "RSS after",
            client.memory().rssMiB,
            "MiB",
            `peak ${formatNumber(client.memory().peakMiB)} MiB`,
          ),
        ];
        return rows;
      } finally {
        await timeExit(client).catch(() => {});
        await server.close();
      }
    },
  };
}
