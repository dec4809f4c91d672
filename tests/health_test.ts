import assert from "node:assert/strict";
import { ClientMetrics } from "../src/health/client_metrics.ts";
import { type HealthStatus, startHealthServer } from "../src/health/health_server.ts";
import { escapeLabelValue, MetricsRegistry } from "../src/health/metrics.ts";

// ---------------------------------------------------------------------------------------------------------
// A small parser of the Prometheus text exposition format 0.0.4, strict enough to catch rendering mistakes:
// every sample must belong to a family announced by # HELP and # TYPE lines, label values must be properly
// quoted and escaped, values must parse as Go floats do.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: string;
  samples: Sample[];
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
}

function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  assert.match(text, /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/, `bad sample value ${text}`);
  return Number(text);
}

function parseLabels(text: string, lineNo: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    assert.ok(name, `line ${lineNo}: bad label name at ${text.slice(i)}`);
    i += name[0].length;
    assert.equal(text.slice(i, i + 2), '="', `line ${lineNo}: expected =" after ${name[0]}`);
    i += 2;
    let value = "";
    for (;;) {
      assert.ok(i < text.length, `line ${lineNo}: unterminated label value`);
      const c = text[i++];
      if (c === '"') break;
      if (c === "\\") {
        const next = text[i++];
        assert.ok(next === "\\" || next === '"' || next === "n", `line ${lineNo}: bad escape \\${next}`);
        value += next === "n" ? "\n" : next;
      } else {
        assert.notEqual(c, "\n");
        value += c;
      }
    }
    assert.ok(!(name[0] in labels), `line ${lineNo}: label ${name[0]} repeated`);
    labels[name[0]] = value;
    if (text[i] === ",") i++;
    else assert.equal(i, text.length, `line ${lineNo}: expected , or } after a label`);
  }
  return labels;
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  if (families.has(sampleName)) return families.get(sampleName);
  const base = sampleName.replace(/_(bucket|sum|count)$/, "");
  const family = families.get(base);
  return family?.type === "histogram" ? family : undefined;
}

function parsePrometheus(text: string): Map<string, Family> {
  assert.ok(text === "" || text.endsWith("\n"), "the page must end with a line feed");
  const families = new Map<string, Family>();
  const lines = text.split("\n").slice(0, -1);
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      assert.ok(!families.has(help[1]), `line ${lineNo}: second HELP for ${help[1]}`);
      families.set(help[1], { name: help[1], help: unescapeHelp(help[2]), type: "untyped", samples: [] });
      return;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      const family = families.get(type[1]);
      assert.ok(family, `line ${lineNo}: TYPE before HELP for ${type[1]}`);
      assert.equal(family.samples.length, 0, `line ${lineNo}: TYPE after samples`);
      family.type = type[2];
      return;
    }
    assert.ok(!line.startsWith("#"), `line ${lineNo}: unexpected comment ${line}`);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample, `line ${lineNo}: not a sample: ${JSON.stringify(line)}`);
    const family = familyOf(sample[1], families);
    assert.ok(family, `line ${lineNo}: sample ${sample[1]} has no HELP/TYPE`);
    family.samples.push({
      name: sample[1],
      labels: sample[2] ? parseLabels(sample[2], lineNo) : {},
      value: parseValue(sample[3]),
    });
  });
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

/** Buckets are cumulative, end in +Inf, and +Inf equals _count, for every label set. */
function checkHistogram(family: Family): void {
  const groups = new Map<string, Sample[]>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = JSON.stringify(rest);
    groups.set(key, [...(groups.get(key) ?? []), sample]);
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    assert.ok(samples.find((s) => s.name === `${family.name}_sum`), `${family.name}: no _sum`);
    assert.ok(count, `${family.name}: no _count`);
    assert.equal(buckets.at(-1)?.labels.le, "+Inf", `${family.name}: last bucket must be +Inf`);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(parseValue(buckets[i].labels.le)) > Number(parseValue(buckets[i - 1].labels.le)));
      assert.ok(buckets[i].value >= buckets[i - 1].value, `${family.name}: buckets must be cumulative`);
    }
    assert.equal(buckets.at(-1)?.value, count.value);
  }
}

function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(name, families);
  assert.ok(family, `no metric ${name}`);
  const sample = family.samples.find((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) ===
      JSON.stringify(Object.entries(labels).sort())
  );
  assert.ok(sample, `no sample ${name}${JSON.stringify(labels)}`);
  return sample.value;
}

// ---------------------------------------------------------------------------------------------------------

Deno.test("the registry renders counters, gauges and histograms in the text format", async () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter({
    name: "things_total",
    help: 'Things with a \\ backslash,\na newline and "quotes".',
    labelNames: ["kind"],
  });
  const plain = registry.counter({ name: "plain_total", help: "No labels." });
  const gauge = registry.gauge({ name: "level", help: "A level.", labelNames: ["where"] });
  let collected: number | undefined = 7;
  registry.gauge({ name: "collected", help: "Read at scrape time.", collect: () => collected });
  registry.gauge({
    name: "async_collected",
    help: "Read at scrape time.",
    collect: () => Promise.resolve(1.5),
  });
  registry.gauge({
    name: "broken",
    help: "The callback throws.",
    collect: () => {
      throw new Error("boom");
    },
  });
  const histogram = registry.histogram({
    name: "took_seconds",
    help: "Durations.",
    labelNames: ["server"],
    buckets: [0.1, 1, 2.5],
  });
  const unlabelled = registry.histogram({ name: "size_bytes", help: "Sizes.", buckets: [10] });

  const weird = 'a"b\\c\nd';
  counter.inc({ kind: "x" });
  counter.inc({ kind: "x" }, 2);
  counter.inc({ kind: weird });
  gauge.set(-3, { where: "here" });
  gauge.inc({ where: "there" });
  gauge.dec({ where: "there" }, 0.5);
  histogram.observe(0.05, { server: "https://a.example" });
  histogram.observe(0.1, { server: "https://a.example" });
  histogram.observe(2, { server: "https://a.example" });
  histogram.observe(100, { server: "https://a.example" });
  histogram.observe(0.5, { server: "https://b.example" });

  const text = await registry.render();
  const families = parsePrometheus(text);
  assert.deepEqual([...families.keys()], [
    "things_total",
    "plain_total",
    "level",
    "collected",
    "async_collected",
    "broken",
    "took_seconds",
    "size_bytes",
  ]);
  assert.equal(families.get("things_total")?.help, 'Things with a \\ backslash,\na newline and "quotes".');
  assert.equal(families.get("things_total")?.type, "counter");
  assert.equal(families.get("level")?.type, "gauge");
  assert.equal(families.get("took_seconds")?.type, "histogram");
  assert.ok(text.includes(`things_total{kind="${escapeLabelValue(weird)}"} 1\n`));
  assert.ok(text.includes('things_total{kind="a\\"b\\\\c\\nd"} 1\n'));
  assert.equal(valueOf(families, "things_total", { kind: "x" }), 3);
  assert.equal(valueOf(families, "things_total", { kind: weird }), 1);
  assert.equal(valueOf(families, "plain_total"), 0, "a metric without labels is always there");
  assert.equal(valueOf(families, "level", { where: "here" }), -3);
  assert.equal(valueOf(families, "level", { where: "there" }), 0.5);
  assert.equal(valueOf(families, "collected"), 7);
  assert.equal(valueOf(families, "async_collected"), 1.5);
  assert.equal(families.get("broken")?.samples.length, 0, "a failing callback leaves the sample out");

  const a = { server: "https://a.example" };
  assert.equal(valueOf(families, "took_seconds_bucket", { ...a, le: "0.1" }), 2, "le is inclusive");
  assert.equal(valueOf(families, "took_seconds_bucket", { ...a, le: "1" }), 2);
  assert.equal(valueOf(families, "took_seconds_bucket", { ...a, le: "2.5" }), 3);
  assert.equal(valueOf(families, "took_seconds_bucket", { ...a, le: "+Inf" }), 4);
  assert.equal(valueOf(families, "took_seconds_count", a), 4);
  assert.ok(Math.abs(valueOf(families, "took_seconds_sum", a) - 102.15) < 1e-9);
  assert.equal(valueOf(families, "took_seconds_count", { server: "https://b.example" }), 1);
  assert.ok(text.includes('took_seconds_bucket{server="https://a.example",le="0.1"} 2\n'));
  assert.equal(
    valueOf(families, "size_bytes_bucket", { le: "+Inf" }),
    0,
    "an untouched histogram shows zeros",
  );
  assert.equal(valueOf(families, "size_bytes_count"), 0);
  unlabelled.observe(3);
  assert.equal(unlabelled.get().count, 1);

  collected = undefined;
  assert.equal(parsePrometheus(await registry.render()).get("collected")?.samples.length, 0);
  assert.equal(plain.get(), 0);
});

Deno.test("the registry rejects bad names, labels and values with typed errors", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.counter({ name: "1bad", help: "" }), TypeError);
  assert.throws(
    () => registry.counter({ name: "ok_total", help: "", labelNames: ["__reserved"] }),
    TypeError,
  );
  assert.throws(() => registry.counter({ name: "ok_total", help: "", labelNames: ["a", "a"] }), TypeError);
  assert.throws(
    () => registry.histogram({ name: "h", help: "", labelNames: ["le"], buckets: [1] }),
    TypeError,
  );
  assert.throws(() => registry.histogram({ name: "h", help: "", buckets: [2, 1] }), TypeError);
  assert.throws(() => registry.histogram({ name: "h", help: "", buckets: [1, Infinity] }), TypeError);
  assert.throws(
    () => registry.gauge({ name: "g", help: "", labelNames: ["a"], collect: () => 1 }),
    TypeError,
  );
  const counter = registry.counter({ name: "c_total", help: "", labelNames: ["a"] });
  assert.throws(() => registry.counter({ name: "c_total", help: "" }), /taken/);
  registry.histogram({ name: "h", help: "", buckets: [1] });
  assert.throws(() => registry.counter({ name: "h_count", help: "" }), /taken/);
  assert.throws(() => counter.inc({}), /expected labels \{a\}/);
  assert.throws(() => counter.inc({ a: "1", b: "2" }), TypeError);
  assert.throws(() => counter.inc({ a: "1" }, -1), RangeError);
});

Deno.test("ClientMetrics counts what the hooks report", async () => {
  let now = 1_000_000;
  const metrics = new ClientMetrics({ now: () => now });
  const observe = metrics.commandObserver();
  observe("ping", { type: "pong" });
  observe("send_cv", { type: "ok" });
  observe("send_cv", { type: "ok" });
  metrics.commandAnswered("send_cv", "error");
  metrics.commandAnswered("(unknown)", "error");
  metrics.cvSent("https://a.example", true);
  metrics.cvSent("https://a.example", true);
  metrics.cvSent("https://b.example", false);
  const hooks = metrics.requestHooks();
  hooks.onRetry({ origin: "https://b.example" });
  metrics.retried("https://b.example");
  hooks.onRequest({ origin: "https://a.example", ms: 40 });
  metrics.requestFinished("https://a.example", 3);
  metrics.cacheLookup(true);
  metrics.cacheLookup(false);
  metrics.cacheLookup(false);
  now += 12_500;

  let families = parsePrometheus(await metrics.render());
  const name = (s: string) => `rtcv_scraper_client_${s}`;
  assert.equal(valueOf(families, name("commands_total"), { type: "ping", result: "ok" }), 1);
  assert.equal(valueOf(families, name("commands_total"), { type: "send_cv", result: "ok" }), 2);
  assert.equal(valueOf(families, name("commands_total"), { type: "send_cv", result: "error" }), 1);
  assert.equal(valueOf(families, name("commands_total"), { type: "(unknown)", result: "error" }), 1);
  assert.equal(valueOf(families, name("cv_sent_total"), { server: "https://a.example", result: "ok" }), 2);
  assert.equal(valueOf(families, name("cv_sent_total"), { server: "https://b.example", result: "error" }), 1);
  assert.equal(valueOf(families, name("retries_total"), { server: "https://b.example" }), 2);
  const a = { server: "https://a.example" };
  assert.equal(valueOf(families, name("request_duration_seconds_count"), a), 2);
  assert.equal(valueOf(families, name("request_duration_seconds_sum"), a), 3.04);
  assert.equal(valueOf(families, name("request_duration_seconds_bucket"), { ...a, le: "0.05" }), 1);
  assert.equal(valueOf(families, name("request_duration_seconds_bucket"), { ...a, le: "2.5" }), 1);
  assert.equal(valueOf(families, name("request_duration_seconds_bucket"), { ...a, le: "5" }), 2);
  assert.equal(valueOf(families, name("cache_lookups_total"), { result: "hit" }), 1);
  assert.equal(valueOf(families, name("cache_lookups_total"), { result: "miss" }), 2);
  assert.equal(valueOf(families, name("outbox_size")), 0, "no outbox reads 0");
  assert.equal(families.get(name("cache_entries"))?.samples.length, 0, "unknown until a callback is set");
  assert.equal(valueOf(families, name("uptime_seconds")), 12.5);
  for (const type of ["commands_total", "cv_sent_total", "retries_total", "cache_lookups_total"]) {
    assert.equal(families.get(name(type))?.type, "counter");
  }
  assert.equal(families.get(name("outbox_size"))?.type, "gauge");
  assert.equal(families.get(name("request_duration_seconds"))?.type, "histogram");

  let outbox = 4;
  metrics.setOutboxSize(() => outbox);
  metrics.setCacheEntries(() => Promise.resolve(17));
  families = parsePrometheus(await metrics.render());
  assert.equal(valueOf(families, name("outbox_size")), 4);
  assert.equal(valueOf(families, name("cache_entries")), 17);
  outbox = 1;
  assert.equal(await metrics.outboxSize(), 1);
});

async function withHealthServer(
  status: () => HealthStatus | Promise<HealthStatus>,
  fn: (base: string, metrics: ClientMetrics) => Promise<void>,
): Promise<void> {
  const metrics = new ClientMetrics();
  const server = await startHealthServer({ port: 0, status, metrics });
  assert.equal(server.host, "127.0.0.1");
  assert.ok(server.port > 0);
  try {
    await fn(`http://127.0.0.1:${server.port}`, metrics);
  } finally {
    await server.close();
  }
}

Deno.test("the health server answers / with the status and /metrics with Prometheus text", async () => {
  let outbox = 2;
  await withHealthServer(
    () => ({ mode: "live", servers: ["https://a.example", "https://b.example"], outbox }),
    async (base, metrics) => {
      metrics.setOutboxSize(() => outbox);
      metrics.commandAnswered("send_cv", "ok");
      metrics.cvSent("https://a.example", true);

      const root = await fetch(`${base}/`);
      assert.equal(root.status, 200);
      assert.match(root.headers.get("content-type") ?? "", /^application\/json/);
      const body = await root.json();
      assert.equal(body.status, "ok");
      assert.equal(body.mode, "live");
      assert.deepEqual(body.servers, ["https://a.example", "https://b.example"]);
      assert.equal(body.outbox, 2);
      assert.equal(typeof body.uptime_seconds, "number");
      assert.ok(body.uptime_seconds >= 0 && body.uptime_seconds < 60);
      assert.ok(!("reason" in body));

      outbox = 5;
      const page = await fetch(`${base}/metrics`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      const families = parsePrometheus(await page.text());
      assert.equal(
        valueOf(families, "rtcv_scraper_client_commands_total", { type: "send_cv", result: "ok" }),
        1,
      );
      assert.equal(
        valueOf(families, "rtcv_scraper_client_cv_sent_total", { server: "https://a.example", result: "ok" }),
        1,
      );
      assert.equal(valueOf(families, "rtcv_scraper_client_outbox_size"), 5);

      const head = await fetch(`${base}/`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");

      const missing = await fetch(`${base}/nope`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
      const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      await post.body?.cancel();
      const query = await fetch(`${base}/?verbose=1`);
      assert.equal(query.status, 200);
      await query.body?.cancel();
    },
  );
});

Deno.test("the health server answers 503 while the primary is failing or the status cannot be read", async () => {
  let failing: string | null = null;
  let broken = false;
  await withHealthServer(
    () => {
      if (broken) throw new Error("store closed");
      return { mode: "live", servers: ["https://a.example"], outbox: 3, failing };
    },
    async (base) => {
      const healthy = await fetch(`${base}/`);
      assert.equal(healthy.status, 200);
      assert.equal((await healthy.json()).status, "ok");

      failing = "primary https://a.example: 3 sends failed in a row";
      const sick = await fetch(`${base}/`);
      assert.equal(sick.status, 503);
      const body = await sick.json();
      assert.equal(body.status, "failing");
      assert.equal(body.reason, "primary https://a.example: 3 sends failed in a row");
      assert.equal(body.mode, "live");
      assert.equal(body.outbox, 3);

      const metrics = await fetch(`${base}/metrics`);
      assert.equal(metrics.status, 200, "metrics are served while failing");
      await metrics.body?.cancel();

      failing = null;
      broken = true;
      const unreadable = await fetch(`${base}/`);
      assert.equal(unreadable.status, 503);
      assert.match((await unreadable.json()).reason, /status could not be read: store closed/);

      broken = false;
      const recovered = await fetch(`${base}/`);
      assert.equal(recovered.status, 200);
      await recovered.body?.cancel();
    },
  );
});

Deno.test("the health server reports a taken port as an error and prints nothing to stdout", async () => {
  const metrics = new ClientMetrics();
  const first = await startHealthServer({
    port: 0,
    metrics,
    status: () => ({ mode: "none", servers: [], outbox: 0 }),
  });
  try {
    await assert.rejects(
      startHealthServer({
        port: first.port,
        metrics,
        status: () => ({ mode: "none", servers: [], outbox: 0 }),
      }),
      /Cannot start the health server on 127\.0\.0\.1:\d+/,
    );
  } finally {
    await first.close();
  }

  // A child process starts a server and fetches from it: its stdout must stay empty (Deno.serve would print
  // "Listening on ..." there unless onListen is given).
  const script = `
    import { ClientMetrics } from ${
    JSON.stringify(new URL("../src/health/client_metrics.ts", import.meta.url).href)
  };
    import { startHealthServer } from ${
    JSON.stringify(new URL("../src/health/health_server.ts", import.meta.url).href)
  };
    const server = await startHealthServer({ port: 0, metrics: new ClientMetrics(),
      status: () => ({ mode: "none", servers: [], outbox: 0 }) });
    await (await fetch("http://127.0.0.1:" + server.port + "/")).text();
    await (await fetch("http://127.0.0.1:" + server.port + "/metrics")).text();
    await server.close();
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(output.stderr), "");
  assert.equal(output.code, 0);
  assert.equal(new TextDecoder().decode(output.stdout), "", "nothing on stdout");
});
