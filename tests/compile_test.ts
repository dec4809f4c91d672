/**
 * The `compile` task of deno.json: its permission set is narrow and yet enough for everything the client
 * does (checked by running `main.ts` with exactly those flags through a session that touches every feature),
 * and, where a denort binary is at hand, the compiled binary answers like `deno run -A main.ts`.
 *
 * `deno compile` needs a denort binary for the target: `DENORT_BIN`, or the one `deno compile` caches under
 * `$DENO_DIR/dl/release/v<version>/`. Without one (no network here) the compile test is ignored and says why.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeRtcv } from "./fake_rtcv.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const decoder = new TextDecoder();

/** Splits a task command into words the way a POSIX shell would for this simple case (quotes, no escapes). */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: string | null = null;
  for (const c of command) {
    if (quote !== null) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === " ") {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

interface CompileTask {
  /** The flags between `deno compile` and `-o`. */
  flags: string[];
  /** The `-o` value. */
  output: string;
  /** The entry point. */
  entry: string;
}

function readCompileTask(): CompileTask {
  const config = JSON.parse(Deno.readTextFileSync(join(root, "deno.json")));
  const task = config.tasks?.compile;
  assert.equal(typeof task, "string", "deno.json has a compile task");
  // `deno compile ... -o <output> main.ts && deno run ... scripts/check_binary.ts <output>`
  const [compile, check, ...more] = task.split(" && ");
  assert.equal(more.length, 0, "the compile task is a compile step and a check step");
  const checkWords = shellWords(check ?? "");
  assert.deepEqual(checkWords.slice(0, 2), ["deno", "run"], "the compile task checks its output");
  assert.equal(checkWords.at(-2), "scripts/check_binary.ts");
  const words = shellWords(compile);
  assert.equal(checkWords.at(-1), words[words.indexOf("-o") + 1], "the check runs the binary just built");
  assert.deepEqual(words.slice(0, 2), ["deno", "compile"]);
  const o = words.indexOf("-o");
  assert.ok(o > 1, "the compile task names its output with -o");
  assert.equal(words.length, o + 3, "the compile task ends with -o <output> <entry>");
  return { flags: words.slice(2, o), output: words[o + 1], entry: words[o + 2] };
}

const compileTask = readCompileTask();

Deno.test("the compile task grants only the permissions the client needs", () => {
  const { flags, output, entry } = compileTask;
  assert.equal(entry, "main.ts");
  assert.equal(output, "rtcv_scraper_client", "the name the Dockerfile copies and .gitignore ignores");
  assert.ok(flags.includes("--unstable-kv"));
  for (const all of ["-A", "--allow-all", "--allow-ffi", "--allow-sys", "--allow-env"]) {
    assert.ok(!flags.includes(all), `${all} is not granted`);
  }
  assert.ok(!flags.some((flag) => /^--allow-(ffi|sys|import)/.test(flag)));
  // Wrapper mode runs the scraper command the user names, so any program: --allow-run without a list.
  assert.ok(flags.includes("--allow-run"));
  // Paths (config file, logs in the working directory, the store) and servers are only known at run time.
  for (const needed of ["--allow-read", "--allow-write", "--allow-net"]) assert.ok(flags.includes(needed));
  const env = flags.find((flag) => flag.startsWith("--allow-env="));
  assert.ok(env, "environment access is limited to the client's variables");
  assert.deepEqual(env.slice("--allow-env=".length).split(",").sort(), [
    "DENO_KV_ACCESS_TOKEN",
    "ENABLE_SCRAPER_CLIENT_LOG",
    "LOG_SCRAPER_CLIENT_INPUT",
    "RTCV_SCRAPER_CLIENT_*",
    // The npm ws client (websockets to RT-CV) reads these two at load.
    "WS_NO_BUFFER_UTIL",
    "WS_NO_UTF_8_VALIDATE",
  ]);
});

/** A free port on 127.0.0.1 (bound and released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Reads a child's stdout line by line. */
class LineReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line, or null at the end. */
  async next(): Promise<string | null> {
    for (;;) {
      const end = this.#buffered.indexOf("\n");
      if (end !== -1) {
        const line = this.#buffered.slice(0, end);
        this.#buffered = this.#buffered.slice(end + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#buffered += value;
    }
  }

  async rest(): Promise<string[]> {
    const lines: string[] = [];
    for (let line = await this.next(); line !== null; line = await this.next()) lines.push(line);
    return lines;
  }
}

const PERMISSION_ERROR = /NotCapable|PermissionDenied|Requires \w+ access|--allow-/;

Deno.test("main.ts runs every feature with exactly the compile task's permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_compile_test_" });
  const rtcv = await startFakeRtcv({ hasMatches: true, scannedReferenceNrs: ["warm-1"] });
  rtcv.setSecret("api", "enc-key-0123456789", { token: "abc" });
  try {
    const configFile = join(dir, "config.jsonc");
    await Deno.writeTextFile(configFile, '{\n  // read at start\n  "timeout_ms": 3000,\n}\n');
    const healthPort = freePort();
    const env = {
      RTCV_SCRAPER_CLIENT_ENV_FILE: configFile,
      RTCV_SCRAPER_CLIENT_KV: join(dir, "cache.kv"),
      RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT: String(healthPort),
      RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS: "50",
      LOG_SCRAPER_CLIENT_INPUT: "true",
      ENABLE_SCRAPER_CLIENT_LOG: "true",
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...compileTask.flags, join(root, "main.ts")],
      cwd: dir,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const stdout = new LineReader(child.stdout);
    const ready = await stdout.next();
    if (ready !== '{"type":"ready","content":"waiting for credentials"}') {
      child.kill();
      assert.fail(`no ready line but ${JSON.stringify(ready)}; stderr: ${await stderr}`);
    }

    // The health server, once main.ts starts it: it must be able to listen with these permissions.
    const health = await fetch(`http://127.0.0.1:${healthPort}/`).catch(() => null);
    if (health !== null) {
      assert.ok(health.status === 200 || health.status === 503, `health answered ${health.status}`);
      await health.body?.cancel();
      const metrics = await fetch(`http://127.0.0.1:${healthPort}/metrics`);
      assert.equal(metrics.status, 200);
      await metrics.body?.cancel();
    }

    const session: [unknown, unknown][] = [
      [{ type: "has_cached_reference", content: "p-1" }, { type: "ok", content: false }],
      [{ type: "set_cached_reference", content: "p-1" }, { type: "ok" }],
      [{ type: "set_short_cached_reference", content: "p-2" }, { type: "ok" }],
      [{ type: "has_cached_reference", content: "p-1" }, { type: "ok", content: true }],
      [{ type: "set_credentials", content: rtcv.wireCredentials() }, { type: "ok" }],
      [{ type: "has_cached_reference", content: "warm-1" }, { type: "ok", content: true }],
      [{ type: "send_cv", content: { referenceNumber: "live-1" } }, { type: "ok", content: true }],
      [{ type: "get_secret", content: { key: "api", encryption_key: "enc-key-0123456789" } }, {
        type: "ok",
        content: { token: "abc" },
      }],
      [{ type: "set_mock", content: {} }, { type: "ok" }],
      [{ type: "send_cv", content: { referenceNumber: "mock-1" } }, { type: "ok", content: true }],
      [{ type: "ping" }, { type: "pong" }],
    ];
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(session.map(([line]) => JSON.stringify(line) + "\n").join("")),
    );
    await writer.close();
    const answers = await stdout.rest();
    const status = await child.status;
    const errors = await stderr;
    assert.doesNotMatch(errors, PERMISSION_ERROR);
    for (const answer of answers) assert.doesNotMatch(answer, PERMISSION_ERROR);
    assert.deepEqual(answers.map((line) => JSON.parse(line)), session.map(([, answer]) => answer), errors);
    assert.equal(status.code, 0, errors);
    assert.equal(rtcv.receivedCvs.length, 1);
    const files = [...Deno.readDirSync(dir)].map((entry) => entry.name);
    for (const name of ["cache.kv", "scraper_client_input.log", "scraper_client.log"]) {
      assert.ok(files.includes(name), `${name} was written (files: ${files.join(", ")})`);
    }

    // Replay of the input log just written (a file anywhere, the api key from the environment).
    const replay = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        ...compileTask.flags,
        join(root, "main.ts"),
        "-replay",
        join(dir, "scraper_client_input.log"),
      ],
      cwd: dir,
      env: { RTCV_SCRAPER_CLIENT_KV: ":memory:", RTCV_SCRAPER_CLIENT_API_KEY: rtcv.credentials().apiKey },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const replayOut = decoder.decode(replay.stdout) + decoder.decode(replay.stderr);
    assert.doesNotMatch(replayOut, PERMISSION_ERROR);
    assert.equal(replay.code, 0, replayOut);
    const replayed = decoder.decode(replay.stdout);
    assert.match(replayed, /IN: set_credentials OUT: ok\n/, replayOut);
    assert.match(replayed, /IN: get_secret OUT: ok: \{"token":"abc"\}\n/, replayOut);
  } finally {
    await rtcv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the health server runs with exactly the compile task's permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_compile_test_" });
  try {
    const script = join(dir, "health_probe.ts");
    await Deno.writeTextFile(
      script,
      `import { ClientMetrics } from ${
        JSON.stringify(new URL("../src/health/client_metrics.ts", import.meta.url).href)
      };
import { startHealthServer } from ${
        JSON.stringify(new URL("../src/health/health_server.ts", import.meta.url).href)
      };
const server = await startHealthServer({ port: 0, metrics: new ClientMetrics(),
  status: () => ({ mode: "none", servers: [], outbox: 0 }) });
const root = await fetch("http://127.0.0.1:" + server.port + "/");
const metrics = await fetch("http://127.0.0.1:" + server.port + "/metrics");
await Deno.stdout.write(new TextEncoder().encode(root.status + " " + metrics.status + " " + (await metrics.text()).length + "\\n"));
await root.body?.cancel();
await server.close();
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-check", ...compileTask.flags, script],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const errors = decoder.decode(output.stderr);
    assert.equal(output.code, 0, errors);
    assert.match(decoder.decode(output.stdout), /^200 200 \d+\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A denort binary `deno compile` can use without downloading, and where it was found; or why there is none. */
async function findDenort(): Promise<{ path: string } | { missing: string }> {
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (fromEnv) {
    return (await exists(fromEnv)) ? { path: fromEnv } : { missing: `DENORT_BIN=${fromEnv} does not exist` };
  }
  const archive = `denort-${Deno.build.target}.zip`;
  const dirs = new Set<string>();
  const denoDirEnv = Deno.env.get("DENO_DIR");
  if (denoDirEnv) dirs.add(denoDirEnv);
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .output().catch(() => null);
  if (info?.success) {
    const denoDir = JSON.parse(decoder.decode(info.stdout)).denoDir;
    if (typeof denoDir === "string") dirs.add(denoDir);
  }
  const home = Deno.env.get("HOME");
  if (home) dirs.add(join(home, ".cache", "deno"));
  const candidates = [...dirs].map((dir) => join(dir, "dl", "release", `v${Deno.version.deno}`, archive));
  for (const candidate of candidates) {
    if (await exists(candidate)) return { path: candidate };
  }
  return { missing: `DENORT_BIN is not set and ${candidates.join(" / ") || archive} does not exist` };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

const denort = await findDenort();
if ("missing" in denort) {
  // deno-lint-ignore no-console
  console.log(
    `compile test skipped: no denort binary for deno compile (${denort.missing}); ` +
      "set DENORT_BIN or run `deno task compile` once with network access",
  );
}

/** Runs a client command on a session and returns its stdout, stderr and exit code. */
async function runSession(command: string[], input: string, cwd: string) {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd,
    env: { RTCV_SCRAPER_CLIENT_KV: ":memory:" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const output = await child.output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

Deno.test({
  name: "the compiled binary answers a mock session exactly like deno run -A main.ts",
  ignore: "missing" in denort,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "rtcv_compile_test_" });
    try {
      const binary = join(dir, compileTask.output);
      const env: Record<string, string> = "path" in denort && denort.path.endsWith(".zip")
        ? {} // the cached archive: deno compile finds it by itself
        : { DENORT_BIN: "path" in denort ? denort.path : "" };
      const compile = await new Deno.Command(Deno.execPath(), {
        args: ["compile", ...compileTask.flags, "-o", binary, compileTask.entry],
        cwd: root,
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(compile.code, 0, decoder.decode(compile.stderr));

      const session = [
        {
          type: "set_mock",
          content: { secrets: { user: { username: "foo", password: "bar" }, api: { t: 1 } } },
        },
        { type: "ping" },
        { type: "has_cached_reference", content: "abcd" },
        { type: "send_cv", content: { reference_number: "abcd", presentation: "Hello" } },
        { type: "send_cv", content: { referenceNumber: "abcd" } },
        { type: "has_cached_reference", content: "abcd" },
        { type: "set_cached_reference", content: "efgh" },
        { type: "set_short_cached_reference", content: "ijkl" },
        { type: "get_cached_reference", content: "ijkl" },
        { type: "get_secret", content: { key: "api", encryption_key: "x" } },
        { type: "get_user_secret", content: { encryption_key: "x" } },
        { type: "get_users_secret", content: { encryption_key: "x" } },
        { type: "send_cv", content: { name: "no reference" } },
        { type: "launch_rockets" },
      ].map((line) => JSON.stringify(line) + "\n").join("") + "not json\n\n";
      const fromSource = await runSession(
        [Deno.execPath(), "run", "-A", join(root, "main.ts")],
        session,
        dir,
      );
      const compiled = await runSession([binary], session, dir);
      assert.equal(fromSource.code, 0, fromSource.stderr);
      assert.equal(compiled.stderr, fromSource.stderr);
      assert.equal(compiled.code, 0);
      assert.equal(compiled.stdout, fromSource.stdout);
      assert.equal(
        compiled.stdout.split("\n").length,
        18,
        "the ready line, 16 answers and the final line feed",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------------------
// The Dockerfile cannot be built here (no container engine), so its structure is checked instead.

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name: string | null;
  instructions: Instruction[];
}

/** Parses a Dockerfile into stages of instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (current === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
    } else {
      logical.push(current + line);
      current = "";
    }
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(match, `cannot parse Dockerfile line ${JSON.stringify(line)}`);
    const keyword = match[1].toUpperCase();
    const rest = match[2].trim();
    if (keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(from, `bad FROM ${rest}`);
      const image = from[1].replace(/\$\{(\w+)\}/g, (_, name) => args.get(name) ?? `\${${name}}`);
      stages.push({ from: image, name: from[2] ?? null, instructions: [] });
    } else if (keyword === "ARG" && stages.length === 0) {
      const [name, value] = rest.split("=");
      args.set(name, value ?? "");
    } else {
      assert.ok(stages.length > 0, `${keyword} before the first FROM`);
      stages.at(-1)!.instructions.push({ keyword, args: rest });
    }
  }
  return { args, stages };
}

/** Whether .dockerignore keeps `path` (relative, with /) in the build context: last matching rule wins. */
function inBuildContext(path: string, rules: string[]): boolean {
  const parts = path.split("/");
  let kept = true;
  for (const rule of rules) {
    const negated = rule.startsWith("!");
    const pattern = (negated ? rule.slice(1) : rule).replace(/^\/+|\/+$/g, "");
    const regex = new RegExp(
      "^" + pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*") + "$",
    );
    // A rule matches the path or any of its parent directories.
    for (let i = 1; i <= parts.length; i++) {
      if (regex.test(parts.slice(0, i).join("/"))) {
        kept = negated;
        break;
      }
    }
  }
  return kept;
}

Deno.test("the Dockerfile builds with the compile task and runs the binary as a non-root user", async () => {
  const dockerfile = parseDockerfile(await Deno.readTextFile(join(root, "Dockerfile")));
  const ciVersion = /DENO_VERSION=(\S+)/.exec(await Deno.readTextFile(join(root, ".ci", "run")))?.[1];
  assert.equal(dockerfile.args.get("DENO_VERSION"), ciVersion, "the image pins the Deno that CI uses");

  assert.equal(dockerfile.stages.length, 2, "a build stage and a runtime stage");
  const [build, runtime] = dockerfile.stages;
  assert.equal(build.from, `denoland/deno:debian-${ciVersion}`);
  assert.equal(build.name, "build");
  assert.equal(runtime.from, `denoland/deno:alpine-${ciVersion}`);

  const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
  const buildDir = of(build, "WORKDIR").at(-1)?.args;
  assert.equal(buildDir, "/app");
  assert.ok(
    of(build, "RUN").some((run) => /^deno task compile\b/.test(run.args)),
    "the build runs deno task compile",
  );
  const binary = of(runtime, "COPY").find((copy) => copy.args.startsWith("--from=build "));
  assert.ok(binary, "the runtime stage copies the binary from the build stage");
  assert.equal(binary.args, `--from=build ${buildDir}/${compileTask.output} /bin/rtcv_scraper_client`);

  // The binary is tried in both stages (in the runtime stage that proves glibc is found on Alpine).
  for (const stage of [build, runtime]) {
    assert.ok(
      of(stage, "RUN").some((run) => /"type":"ping".*rtcv_scraper_client.*grep -q '"pong"'/.test(run.args)),
    );
  }

  const users = of(runtime, "USER");
  assert.equal(users.length, 1);
  assert.equal(users[0].args, "deno");
  const userIndex = runtime.instructions.indexOf(users[0]);
  assert.ok(
    runtime.instructions.slice(userIndex).every((i) => i.keyword !== "RUN"),
    "nothing runs as root after the switch",
  );
  assert.ok(
    of(runtime, "ENV").some((env) => env.args === "RTCV_SCRAPER_CLIENT_KV=/data/rtcv_scraper_client.kv"),
  );
  assert.equal(of(runtime, "WORKDIR").at(-1)?.args, "/data");
  assert.deepEqual(of(runtime, "VOLUME").map((v) => v.args), ["/data"]);
  const volumeIndex = runtime.instructions.findIndex((i) => i.keyword === "VOLUME");
  const chown = runtime.instructions.findIndex((i) =>
    i.keyword === "RUN" && /chown deno:deno \/data/.test(i.args)
  );
  assert.ok(chown !== -1 && chown < volumeIndex, "/data is given to deno before VOLUME");
  const entrypoint = JSON.parse(of(runtime, "ENTRYPOINT").at(-1)?.args ?? "null");
  assert.deepEqual(entrypoint, ["/tini", "--", "/bin/rtcv_scraper_client"]);

  // Everything the build copies is in the build context, and so is every local module main.ts imports.
  const rules = (await Deno.readTextFile(join(root, ".dockerignore"))).split("\n")
    .map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
  const copied: string[] = [];
  for (const copy of of(build, "COPY")) {
    const words = copy.args.split(/\s+/).filter((word) => !word.startsWith("--"));
    for (const source of words.slice(0, -1)) {
      const path = source.replace(/\/+$/, "");
      copied.push(path);
      assert.ok(inBuildContext(path, rules), `${path} is copied but .dockerignore leaves it out`);
    }
  }
  assert.ok(!inBuildContext("tests/module_test.ts", rules) && !inBuildContext(".git", rules));
  assert.ok(!inBuildContext("rtcv_scraper_client.kv", rules));
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(info.code, 0, decoder.decode(info.stderr));
  const modules: { specifier: string }[] = JSON.parse(decoder.decode(info.stdout)).modules;
  const local = modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"))
    .map((s) => fileURLToPath(s).slice(root.length));
  assert.ok(local.includes("main.ts") && local.length > 10, `local modules: ${local.join(", ")}`);
  for (const path of local) {
    assert.ok(
      inBuildContext(path, rules),
      `${path} is imported by main.ts but left out of the build context`,
    );
    assert.ok(
      copied.some((c) => path === c || path.startsWith(`${c}/`)),
      `${path} is not copied by the build`,
    );
  }
});

Deno.test("wrapper mode and the websockets to RT-CV run with exactly the compile task's permissions", async () => {
  const { acceptWebSockets } = await import("./fake_rtcv_socket.ts");
  const dir = await Deno.makeTempDir({ prefix: "rtcv_compile_test_" });
  const rtcv = await startFakeRtcv({ hasMatches: true });
  const sockets = acceptWebSockets(rtcv);
  try {
    const plan = join(dir, "plan.json");
    await Deno.writeTextFile(
      plan,
      JSON.stringify([
        { request: { path: "/send_cv", body: '{"referenceNumber":"w-1"}' } },
        { request: { path: "/server_request" } },
        { exit: 5 },
      ]),
    );
    const scraper = fileURLToPath(new URL("./fixtures/v2_scraper.ts", import.meta.url));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        ...compileTask.flags,
        join(root, "main.ts"),
        Deno.execPath(),
        "run",
        "-A",
        scraper,
        plan,
      ],
      cwd: dir,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        RTCV_SCRAPER_CLIENT_ENV: JSON.stringify({ primary_server: rtcv.wireCredentials() }),
        RTCV_SCRAPER_CLIENT_KV: ":memory:",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const stdout = new LineReader(child.stdout);
    assert.match((await stdout.next()) ?? "", /^\{"address":"http:\/\/127\.0\.0\.1:\d+"\}$/);
    assert.equal(JSON.parse((await stdout.next()) ?? "null").body, "true");
    await sockets.waitForOpen(1);
    sockets.push({ type: "t", id: 1, data: null });
    assert.deepEqual(JSON.parse(JSON.parse((await stdout.next()) ?? "null").body), {
      type: "t",
      id: "0-1",
      data: null,
    });
    const status = await child.status;
    const errors = await stderr;
    assert.doesNotMatch(errors, PERMISSION_ERROR);
    assert.equal(status.code, 5, errors);
  } finally {
    sockets.closeAll();
    await rtcv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
