import assert from "node:assert/strict";
import { ClientMetrics } from "../src/health/client_metrics.ts";
import { type HealthStatus, startHealthServer } from "../src/health/health_server.ts";
import { HistogramSeries, renderFamilies } from "../src/health/prometheus_text.ts";

/**
 * The samples of a Prometheus text page by series (`name{a="x",b="y"}`), each line checked: `# HELP`,
 * `# TYPE`, or a sample with quoted, escaped label values and a number.
 */
function samplesOf(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  assert.ok(text.endsWith("\n"), "the page ends with a line feed");
  for (const line of text.slice(0, -1).split("\n")) {
    if (/^# (HELP|TYPE) [a-z_]+ \S/.test(line)) continue;
    const match =
      /^([a-zA-Z_:][\w:]*(?:\{[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*")*\})?) (\S+)$/
        .exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const value = match[2] === "+Inf" ? Infinity : Number(match[2]);
    assert.ok(!Number.isNaN(value), line);
    samples.set(match[1], value);
  }
  return samples;
}

/** The value of one series, labels in the order the client renders them. */
function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const pairs = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  return samplesOf(text).get(pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`);
}

Deno.test("the renderer escapes label values and help text and renders histograms cumulatively", () => {
  const histogram = new HistogramSeries([0.5, 1]);
  histogram.observe({ server: 'a"\\b\nc' }, 0.7);
  histogram.observe({ server: 'a"\\b\nc' }, 0.2);
  const text = renderFamilies([{
    name: "h_seconds",
    help: "A\\b\nc",
    type: "histogram",
    samples: histogram.samples(),
  }]);
  assert.equal(
    text,
    [
      "# HELP h_seconds A\\\\b\\nc",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{server="a\\"\\\\b\\nc",le="0.5"} 1',
      'h_seconds_bucket{server="a\\"\\\\b\\nc",le="1"} 2',
      'h_seconds_bucket{server="a\\"\\\\b\\nc",le="+Inf"} 2',
      'h_seconds_sum{server="a\\"\\\\b\\nc"} 0.8999999999999999',
      'h_seconds_count{server="a\\"\\\\b\\nc"} 2',
      "",
    ].join("\n"),
  );
  assert.equal(samplesOf(text).size, 5);
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

  let text = await metrics.render();
  const name = (s: string) => `rtcv_scraper_client_${s}`;
  assert.equal(valueOf(text, name("commands_total"), { type: "ping", result: "ok" }), 1);
  assert.equal(valueOf(text, name("commands_total"), { type: "send_cv", result: "ok" }), 2);
  assert.equal(valueOf(text, name("commands_total"), { type: "send_cv", result: "error" }), 1);
  assert.equal(valueOf(text, name("commands_total"), { type: "(unknown)", result: "error" }), 1);
  assert.equal(valueOf(text, name("cv_sent_total"), { server: "https://a.example", result: "ok" }), 2);
  assert.equal(valueOf(text, name("cv_sent_total"), { server: "https://b.example", result: "error" }), 1);
  assert.equal(valueOf(text, name("retries_total"), { server: "https://b.example" }), 2);
  const a = { server: "https://a.example" };
  assert.equal(valueOf(text, name("request_duration_seconds_count"), a), 2);
  assert.equal(valueOf(text, name("request_duration_seconds_sum"), a), 3.04);
  assert.equal(valueOf(text, name("request_duration_seconds_bucket"), { ...a, le: "0.05" }), 1);
  assert.equal(valueOf(text, name("request_duration_seconds_bucket"), { ...a, le: "2.5" }), 1);
  assert.equal(valueOf(text, name("request_duration_seconds_bucket"), { ...a, le: "5" }), 2);
  assert.equal(valueOf(text, name("cache_lookups_total"), { result: "hit" }), 1);
  assert.equal(valueOf(text, name("cache_lookups_total"), { result: "miss" }), 2);
  assert.equal(valueOf(text, name("outbox_size")), 0, "no outbox reads 0");
  assert.equal(valueOf(text, name("cache_entries")), undefined, "unknown until a callback is set");
  assert.ok(text.includes(`# TYPE ${name("cache_entries")} gauge\n`));
  assert.equal(valueOf(text, name("uptime_seconds")), 12.5);
  for (const type of ["commands_total", "cv_sent_total", "retries_total", "cache_lookups_total"]) {
    assert.ok(text.includes(`# TYPE ${name(type)} counter\n`), type);
  }
  assert.ok(text.includes(`# TYPE ${name("outbox_size")} gauge\n`));
  assert.ok(text.includes(`# TYPE ${name("request_duration_seconds")} histogram\n`));

  let outbox = 4;
  metrics.setOutboxSize(() => outbox);
  metrics.setCacheEntries(() => Promise.resolve(17));
  text = await metrics.render();
  assert.equal(valueOf(text, name("outbox_size")), 4);
  assert.equal(valueOf(text, name("cache_entries")), 17);
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
      const text = await page.text();
      assert.equal(
        valueOf(text, "rtcv_scraper_client_commands_total", { type: "send_cv", result: "ok" }),
        1,
      );
      assert.equal(
        valueOf(text, "rtcv_scraper_client_cv_sent_total", { server: "https://a.example", result: "ok" }),
        1,
      );
      assert.equal(valueOf(text, "rtcv_scraper_client_outbox_size"), 5);

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
