import assert from "node:assert/strict";
import { DebugLog } from "../src/debug/debug_log.ts";
import { BatchedFileWriter, InputLog, LogWriteError } from "../src/debug/input_log.ts";
import { REDACTED } from "../src/debug/redact.ts";

const posix = Deno.build.os !== "windows";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_debug_logs_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function modeOf(path: string): Promise<number> {
  const info = await Deno.stat(path);
  return (info.mode ?? 0) & 0o777;
}

Deno.test("InputLog creates the file with mode 0600 and appends redacted lines", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/scraper_client_input.log`;
    const log = await InputLog.open(path);
    assert.equal(log.path, path);
    log.append('{"type":"set_credentials","content":{"api_key_id":"id","api_key":"s3cret"}}');
    log.append('{"type":"ping"}');
    log.append('{"type":"set_ingest","content":{"base_url":"https://i","token":"t0k');
    await log.close();
    if (posix) assert.equal(await modeOf(path), 0o600);
    const text = await Deno.readTextFile(path);
    assert.equal(
      text,
      `{"type":"set_credentials","content":{"api_key_id":"id","api_key":"${REDACTED}"}}\n` +
        '{"type":"ping"}\n' +
        `{"type":"set_ingest","content":{"base_url":"https://i","token":"${REDACTED}"\n`,
    );
    assert.ok(!text.includes("s3cret") && !text.includes("t0k"));
  });
});

Deno.test({
  name: "InputLog makes a pre-existing 0644 file 0600 and appends to it",
  ignore: !posix,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/scraper_client_input.log`;
      await Deno.writeTextFile(path, "earlier line\n", { mode: 0o644 });
      await Deno.chmod(path, 0o644);
      assert.equal(await modeOf(path), 0o644);
      const log = await InputLog.open(path);
      assert.equal(await modeOf(path), 0o600);
      log.append("later line");
      await log.close();
      assert.equal(await Deno.readTextFile(path), "earlier line\nlater line\n");
    });
  },
});

Deno.test("InputLog keeps lines that are not JSON, blank lines and replacement characters as given", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/in.log`;
    const log = await InputLog.open(path);
    const lines = ["", "not json", "\uFFFD\uFFFD broken utf-8", '{"api_key":"a\\"b"} trailing junk'];
    for (const line of lines) log.append(line);
    await log.close();
    assert.equal(
      await Deno.readTextFile(path),
      `\nnot json\n\uFFFD\uFFFD broken utf-8\n{"api_key":"${REDACTED}"} trailing junk\n`,
    );
  });
});

Deno.test("InputLog batching keeps the order and does not write before the timer fires", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/in.log`;
    const log = await InputLog.open(path);
    const expected: string[] = [];
    for (let i = 0; i < 5000; i++) {
      log.append(`{"type":"has_cached_reference","content":"ref-${i}"}`);
      expected.push(`{"type":"has_cached_reference","content":"ref-${i}"}`);
    }
    // Nothing written synchronously: appends only buffer.
    assert.equal((await Deno.stat(path)).size, 0);
    // Interleave appends with in-flight writes.
    for (let i = 5000; i < 6000; i++) {
      log.append(`line ${i}`);
      expected.push(`line ${i}`);
      if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await log.flush();
    assert.equal(await Deno.readTextFile(path), expected.join("\n") + "\n");
    log.append("after flush");
    await log.close();
    assert.equal(await Deno.readTextFile(path), [...expected, "after flush"].join("\n") + "\n");
  });
});

Deno.test("InputLog writes on its own shortly after appends, without flush", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/in.log`;
    const log = await InputLog.open(path);
    log.append("one");
    log.append("two");
    for (let i = 0; i < 100 && (await Deno.stat(path)).size === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(await Deno.readTextFile(path), "one\ntwo\n");
    await log.close();
  });
});

Deno.test("InputLog uses few writes for many lines", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/in.log`;
    const writer = await BatchedFileWriter.open(path);
    // Count the writes by wrapping the file's write method through the prototype.
    const original = Deno.FsFile.prototype.write;
    let writes = 0;
    Deno.FsFile.prototype.write = function (this: Deno.FsFile, p: Uint8Array) {
      writes++;
      return original.call(this, p);
    };
    try {
      for (let i = 0; i < 1000; i++) writer.write(`line ${i}\n`);
      await writer.flush();
    } finally {
      Deno.FsFile.prototype.write = original;
    }
    await writer.close();
    assert.ok(writes >= 1 && writes <= 3, `expected a handful of writes, got ${writes}`);
    assert.equal((await Deno.readTextFile(path)).split("\n").length, 1001);
  });
});

Deno.test("close flushes, is idempotent, and later appends are ignored", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/in.log`;
    const log = await InputLog.open(path);
    log.append("last words");
    const first = log.close();
    const second = log.close();
    await Promise.all([first, second]);
    log.append("too late");
    await log.flush();
    assert.equal(await Deno.readTextFile(path), "last words\n");
  });
});

Deno.test("opening a log in a missing directory is a LogWriteError naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/missing/dir/in.log`;
    await assert.rejects(
      () => InputLog.open(path),
      (err) =>
        err instanceof LogWriteError && err.path === path &&
        err.message.startsWith(`cannot open log file ${path}`),
    );
    await assert.rejects(() => DebugLog.open(path), LogWriteError);
  });
});

Deno.test("DebugLog writes one timestamped line per message, mode 0600", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/scraper_client.log`;
    const log = await DebugLog.open(path);
    assert.equal(log.enabled, true);
    const before = Date.now();
    log.log("first message");
    log.log("multi\nline\r\nmessage");
    log.log('credentials {"api_key":"s3cret"}');
    await log.close();
    assert.equal(log.enabled, false);
    if (posix) assert.equal(await modeOf(path), 0o600);
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, 3);
    const messages = lines.map((line) => {
      const space = line.indexOf(" ");
      const stamp = line.slice(0, space);
      assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Date.parse(stamp) >= before - 1000 && Date.parse(stamp) <= Date.now() + 1000);
      return line.slice(space + 1);
    });
    assert.deepEqual(messages, [
      "first message",
      "multi\\nline\\nmessage",
      `credentials {"api_key":"${REDACTED}"}`,
    ]);
  });
});

Deno.test({
  name: "DebugLog makes a pre-existing 0644 file 0600 and appends to it",
  ignore: !posix,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/scraper_client.log`;
      await Deno.writeTextFile(path, "old\n");
      await Deno.chmod(path, 0o644);
      const log = await DebugLog.open(path);
      assert.equal(await modeOf(path), 0o600);
      log.log("new");
      await log.close();
      const text = await Deno.readTextFile(path);
      assert.ok(text.startsWith("old\n") && text.endsWith(" new\n"), text);
    });
  },
});

Deno.test("DebugLog keeps the order of many messages", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/scraper_client.log`;
    const log = await DebugLog.open(path);
    for (let i = 0; i < 3000; i++) {
      log.log(`message ${i}`);
      if (i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await log.close();
    const messages = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) =>
      l.slice(l.indexOf(" ") + 1)
    );
    assert.deepEqual(messages, Array.from({ length: 3000 }, (_, i) => `message ${i}`));
  });
});

Deno.test("a disabled DebugLog does nothing, cheaply", async () => {
  const log = DebugLog.disabled();
  assert.equal(log.enabled, false);
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) log.log("nothing");
  assert.ok(performance.now() - start < 1000);
  await log.flush();
  await log.close();
  await log.close();
});
