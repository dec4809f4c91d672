/**
 * The outbox engine's rules over a real Deno.Kv store, with a sender that plays a server: per-entry retries
 * (no head-of-line blocking), dead letters for 4xx and for the same refusal N times, the age limit, the
 * in-flight limit, lease take-over after a lapse, release at a clean close, and store write failures
 * retried like deliveries.
 */

import assert from "node:assert/strict";
import { CommitBatcher } from "../src/cache/commit_batcher.ts";
import { systemClock } from "../src/clock.ts";
import { KvOutboxStore } from "../src/outbox/kv_outbox_store.ts";
import { type ChannelSender, Outbox } from "../src/outbox/outbox.ts";
import type { LeasedEntry, NewOutboxEntry, OutboxStore } from "../src/outbox/outbox_store.ts";
import {
  decideRetry,
  DEFAULT_RETRY_SETTINGS,
  type DeliveryFailure,
  type RetrySettings,
} from "../src/outbox/retry_rules.ts";

const CHANNEL = "https://mirror.example";
const FAST: RetrySettings = {
  retryMs: 5,
  maxAttempts: 5,
  maxAgeMs: 60_000,
  maxDelayMs: 20,
  random: () => 0.5,
};
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function copy(label: string): NewOutboxEntry {
  return {
    channel: CHANNEL,
    key: `scanCV:${label}`,
    route: "scanCV",
    label,
    count: 1,
    payload: encoder.encode(label),
  };
}

/** A fake server as a sender: `answer(label)` returns null to accept, or the failure to throw. */
class FakeSender implements ChannelSender {
  readonly delivered: string[] = [];
  readonly attempts = new Map<string, number>();
  inFlight = 0;
  maxInFlight = 0;
  latencyMs = 0;
  answer: (label: string) => DeliveryFailure | null = () => null;

  async deliver(batch: readonly LeasedEntry[], signal: AbortSignal): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.latencyMs > 0) await abortable(this.latencyMs, signal);
      for (const { payload } of batch) {
        const label = decoder.decode(payload);
        this.attempts.set(label, (this.attempts.get(label) ?? 0) + 1);
        const failure = this.answer(label);
        if (failure) throw failure;
        this.delivered.push(label);
      }
    } finally {
      this.inFlight--;
    }
  }

  classify(error: unknown): DeliveryFailure {
    return error as DeliveryFailure;
  }
}

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

async function withStore(
  fn: (path: string, open: () => Promise<OutboxStore>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_engine_" });
  const kvs: Deno.Kv[] = [];
  try {
    await fn(`${dir}/store.kv`, async () => {
      const kv = await Deno.openKv(`${dir}/store.kv`);
      kvs.push(kv);
      return new KvOutboxStore(kv, new CommitBatcher(kv));
    });
  } finally {
    for (const kv of kvs) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function outbox(store: OutboxStore, options: Partial<ConstructorParameters<typeof Outbox>[0]> = {}): Outbox {
  return new Outbox({
    store,
    clock: systemClock(),
    retry: FAST,
    leaseMs: 30_000,
    maxInFlight: 8,
    ...options,
  });
}

async function drained(box: Outbox, timeoutMs = 5000): Promise<void> {
  await box.flush(() => true, Date.now() + timeoutMs);
}

Deno.test("an entry the server keeps refusing with a 500 holds up nothing; it is dead after 5 attempts", async () => {
  await withStore(async (_, open) => {
    const store = await open();
    const box = outbox(store);
    const sender = new FakeSender();
    const refusal: DeliveryFailure = {
      kind: "repeated",
      message: "answered 500: parsing time",
      retryAfterMs: null,
    };
    sender.answer = (label) => label === "bad" ? refusal : null;
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("bad"), ...["a", "b", "c"].map(copy)]);
    await box.enqueue(["d", "e"].map(copy));
    await drained(box);
    assert.deepEqual(sender.delivered.sort(), ["a", "b", "c", "d", "e"]);
    assert.equal(sender.attempts.get("bad"), 5, "every request counted, the first included");
    const letters = await store.deadLetters(10);
    assert.deepEqual(letters.map((letter) => [letter.label, letter.reason]), [[
      "bad",
      "answered 500: parsing time",
    ]]);
    const counts = (await store.status()).get(CHANNEL)!;
    assert.deepEqual([counts.pending, counts.dead, counts.delivered], [0, 1, 5]);
    await box.close(Date.now());
  });
});

Deno.test("a 4xx refusal is a dead letter at once; transient failures are retried and neither count nor reset", async () => {
  await withStore(async (_, open) => {
    const store = await open();
    const box = outbox(store);
    const sender = new FakeSender();
    let flaky = 0;
    sender.answer = (label) => {
      if (label === "refused") {
        return { kind: "refused", message: "answered 400: invalid cv", retryAfterMs: null };
      }
      if (label === "flaky" && flaky < 8) {
        flaky++;
        // Alternating transient failures and one counted refusal: the refusal count is never reached.
        return flaky === 4
          ? { kind: "repeated", message: "answered 500: oops", retryAfterMs: null }
          : { kind: "transient", message: "answered 503: busy", retryAfterMs: null };
      }
      return null;
    };
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("refused"), copy("flaky")]);
    await drained(box);
    assert.equal(sender.attempts.get("refused"), 1);
    assert.equal(sender.attempts.get("flaky"), 9);
    assert.deepEqual(sender.delivered, ["flaky"]);
    assert.deepEqual((await store.deadLetters(10)).map((letter) => letter.label), ["refused"]);
    await box.close(Date.now());
  });
});

Deno.test("transient failures are retried until the age limit, then the entry is a dead letter that says why", async () => {
  await withStore(async (_, open) => {
    const store = await open();
    const box = outbox(store, { retry: { ...FAST, maxAgeMs: 150 } });
    const sender = new FakeSender();
    sender.answer = () => ({ kind: "transient", message: "could not be reached", retryAfterMs: null });
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("old")]);
    await drained(box);
    const [letter] = await store.deadLetters(10);
    assert.match(letter.reason, /could not be reached \(still failing after the age limit of 150 ms\)/);
    assert.ok((sender.attempts.get("old") ?? 0) > 3);
    await box.close(Date.now());
  });
});

/** An entry never tried, for the retry rules. */
const FRESH_ENTRY = {
  id: "1",
  channel: CHANNEL,
  key: null,
  route: "scanCV" as const,
  label: "r",
  count: 1,
  createdAt: 0,
  nextAt: 0,
  attempts: 0,
  refusal: null,
  refusals: 0,
  lastError: null,
};

Deno.test("backoff grows with jitter from the first wait, honours Retry-After, and is capped", () => {
  const entry = FRESH_ENTRY;
  const settings: RetrySettings = {
    retryMs: 1000,
    maxAttempts: 5,
    maxAgeMs: 1e9,
    maxDelayMs: 60_000,
    random: () => 0,
  };
  const transient: DeliveryFailure = { kind: "transient", message: "busy", retryAfterMs: null };
  const waits = [0, 1, 2, 10].map((attempts) => {
    const decision = decideRetry({ ...entry, attempts }, transient, 0, settings);
    return "retry" in decision ? decision.retry.nextAt : -1;
  });
  assert.deepEqual(waits, [500, 1000, 2000, 30_000]); // ×0.5 jitter at random() = 0; capped at 60 s
  const high = decideRetry(entry, transient, 0, { ...settings, random: () => 0.999 });
  assert.ok("retry" in high && high.retry.nextAt > 1400 && high.retry.nextAt < 1500);
  const asked = decideRetry(entry, { ...transient, retryAfterMs: 7000 }, 0, settings);
  assert.ok("retry" in asked && asked.retry.nextAt === 7000);
  const capped = decideRetry(entry, { ...transient, retryAfterMs: 10 ** 9 }, 0, settings);
  assert.ok("retry" in capped && capped.retry.nextAt === 60_000);
});

Deno.test("the default settings jitter: first waits spread over [0.5, 1.5) of RETRY_MS, not one value", () => {
  const entry = FRESH_ENTRY;
  const transient: DeliveryFailure = { kind: "transient", message: "busy", retryAfterMs: null };
  const waits = Array.from({ length: 64 }, () => {
    const decision = decideRetry(entry, transient, 0, DEFAULT_RETRY_SETTINGS);
    return "retry" in decision ? decision.retry.nextAt : -1;
  });
  const { retryMs } = DEFAULT_RETRY_SETTINGS;
  for (const wait of waits) assert.ok(wait >= retryMs * 0.5 && wait <= retryMs * 1.5, `wait ${wait}`);
  // 64 draws of Math.random rounded to whole ms: fewer than 16 distinct values means no real jitter source.
  assert.ok(new Set(waits).size >= 16, `${new Set(waits).size} distinct first waits of 64`);
});

Deno.test("at most maxInFlight requests per channel", async () => {
  await withStore(async (_, open) => {
    const box = outbox(await open(), { maxInFlight: 3 });
    const sender = new FakeSender();
    sender.latencyMs = 20;
    box.serve(CHANNEL, sender);
    await box.enqueue(Array.from({ length: 20 }, (_, i) => copy(`r${i}`)));
    await drained(box);
    assert.equal(sender.delivered.length, 20);
    assert.equal(sender.maxInFlight, 3);
    await box.close(Date.now());
  });
});

Deno.test("a lapsed lease is taken over; a clean close frees the rest at once", async () => {
  await withStore(async (_, open) => {
    const storeA = await open();
    const storeB = await open();
    // Process A put entries and died (never renews): its leases lapse after leaseMs.
    const now = Date.now();
    await storeA.put(["x1", "x2"].map(copy), "dead-process", now + 300, now);
    const b = outbox(storeB, { leaseMs: 200 });
    const sender = new FakeSender();
    b.serve(CHANNEL, sender);
    await drained(b);
    assert.deepEqual(sender.delivered.sort(), ["x1", "x2"]);
    assert.ok(Date.now() - now >= 290, "not before the lease lapsed");

    // A living process holds entries (a slow server) and closes: its leases are freed, not left to lapse.
    const a = outbox(storeA, { leaseMs: 60_000 });
    const slow = new FakeSender();
    slow.latencyMs = 60_000;
    a.serve(CHANNEL, slow);
    await a.enqueue(["y1", "y2"].map(copy));
    await a.close(Date.now() + 50);
    const started = Date.now();
    await drained(b);
    assert.deepEqual(sender.delivered.sort(), ["x1", "x2", "y1", "y2"]);
    assert.ok(Date.now() - started < 10_000, "taken at once, not after the 60 s lease");
    await b.close(Date.now());
  });
});

Deno.test("a failed store write (a dead letter that cannot be written) is retried with the same backoff", async () => {
  await withStore(async (_, open) => {
    const real = await open();
    let failures = 2;
    const flaky: OutboxStore = {
      put: (...args) => real.put(...args),
      take: (...args) => real.take(...args),
      renew: (...args) => real.renew(...args),
      ack: (...args) => real.ack(...args),
      reschedule: (...args) => real.reschedule(...args),
      release: (...args) => real.release(...args),
      status: () => real.status(),
      deadLetters: (limit) => real.deadLetters(limit),
      bury: (...args) => {
        if (failures-- > 0) return Promise.reject(new Error("disk full"));
        return real.bury(...args);
      },
    };
    const logs: string[] = [];
    const box = outbox(flaky, { log: (line) => logs.push(line) });
    const sender = new FakeSender();
    sender.answer = () => ({ kind: "refused", message: "answered 400: no", retryAfterMs: null });
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("z")]);
    await drained(box);
    assert.equal(sender.attempts.get("z"), 1, "sent once: the write is what is retried");
    assert.equal((await real.deadLetters(10)).length, 1);
    assert.equal(logs.filter((line) => /store write .* failed \(disk full\)/.test(line)).length, 2);
    await box.close(Date.now());
  });
});

Deno.test("a living process renews its leases: a delivery slower than the lease is not taken over", async () => {
  await withStore(async (_, open) => {
    // Leases long enough that a renewal (every third of a lease) is not missed on a loaded 2-core machine.
    const a = outbox(await open(), { leaseMs: 500 });
    const b = outbox(await open(), { leaseMs: 500 });
    const slowA = new FakeSender();
    slowA.latencyMs = 2000; // four lease lengths
    const senderB = new FakeSender();
    a.serve(CHANNEL, slowA);
    b.serve(CHANNEL, senderB);
    await a.enqueue([copy("slow-1")]);
    await drained(a);
    assert.deepEqual(slowA.delivered, ["slow-1"]);
    await drained(b);
    assert.deepEqual(senderB.delivered, [], "B never took the entry A was still sending");
    await Promise.all([a.close(Date.now()), b.close(Date.now())]);
  });
});

Deno.test("metrics show pending and dead per server and stream", async () => {
  const { ClientMetrics } = await import("../src/health/client_metrics.ts");
  const metrics = new ClientMetrics();
  metrics.setOutboxCounts(() =>
    Promise.resolve([
      { kind: "cv" as const, target: "https://mirror.example", pending: 3, dead: 1 },
      { kind: "ingest" as const, target: "job/boss", pending: 200, dead: 0 },
    ])
  );
  const text = await metrics.render();
  assert.match(
    text,
    /rtcv_scraper_client_outbox_items\{kind="cv",target="https:\/\/mirror.example",state="pending"\} 3/,
  );
  assert.match(
    text,
    /rtcv_scraper_client_outbox_items\{kind="cv",target="https:\/\/mirror.example",state="dead"\} 1/,
  );
  assert.match(
    text,
    /rtcv_scraper_client_outbox_items\{kind="ingest",target="job\/boss",state="pending"\} 200/,
  );
  assert.match(text, /rtcv_scraper_client_outbox_size 203/);
});

Deno.test("a delivery that ends while a lease renewal is under way is acked once, never sent again", async () => {
  await withStore(async (_, open) => {
    const inner = await open();
    // A busy store: the renewal is committed at once, but its answer comes back 150 ms later, so the
    // delivery below ends while the engine still holds the lease of before the renewal.
    let renewals = 0;
    const store: OutboxStore = Object.create(inner, {
      renew: {
        value: async (...args: Parameters<OutboxStore["renew"]>) => {
          const renewed = await inner.renew(...args);
          renewals++;
          await new Promise((resolve) => setTimeout(resolve, 150));
          return renewed;
        },
      },
    });
    for (const name of ["put", "take", "ack", "reschedule", "bury", "release", "status", "deadLetters"]) {
      const method = (inner as unknown as Record<string, (...args: unknown[]) => unknown>)[name];
      Object.defineProperty(store, name, { value: method.bind(inner) });
    }
    const box = outbox(store, { leaseMs: 300 }); // renewed every 100 ms
    const sender = new FakeSender();
    sender.latencyMs = 180;
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("once")]);
    await drained(box);
    assert.ok(renewals > 0, "a renewal ran while the copy was in flight");
    const counts = (await inner.status()).get(CHANNEL)!;
    assert.deepEqual([counts.pending, counts.delivered], [0, 1], "the ack found the renewed lease");
    assert.deepEqual(sender.delivered, ["once"]);
    await box.close(Date.now());
  });
});

Deno.test("a put resolves before its copies are sent: the command that put them answers first", async () => {
  await withStore(async (_, open) => {
    const box = outbox(await open());
    const sender = new FakeSender();
    box.serve(CHANNEL, sender);
    await box.enqueue([copy("first")]);
    assert.equal(sender.maxInFlight, 0, "no request was started before the put resolved");
    await drained(box);
    assert.deepEqual(sender.delivered, ["first"]);
    await box.close(Date.now());
  });
});
