/**
 * Installing from a clone without Deno's download host: `deno task install` puts an `rtcv_scraper_client`
 * command on PATH (tested in a temporary install root), and `deno task compile` refuses a binary that is not
 * the client (the Deno REPL that `DENORT_BIN=<the deno binary>` produces).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkBinary } from "../scripts/check_binary.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const decoder = new TextDecoder();
const tasks: Record<string, string> = JSON.parse(Deno.readTextFileSync(join(root, "deno.json"))).tasks;

/** The permission flags of a task's first step: `--unstable-kv` and the `--allow-*` words, in order. */
function permissionFlags(task: string): string[] {
  return task.split(" && ")[0].split(" ").filter((word) => /^'?--(allow-|unstable-kv)/.test(word));
}

async function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string> }) {
  const output = await new Deno.Command(command, { args, ...options, stdout: "piped", stderr: "piped" })
    .output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

Deno.test("the install task uses the project's config and the compile task's permissions", () => {
  const install = tasks.install;
  assert.match(install, /^deno install -g /);
  for (const flag of ["--force", "-n rtcv_scraper_client", "--config deno.json"]) {
    assert.ok(install.includes(` ${flag} `), `${flag} in ${install}`);
  }
  assert.ok(install.endsWith(" main.ts"));
  assert.deepEqual(permissionFlags(install), permissionFlags(tasks.compile));
});

Deno.test("deno task install puts a working rtcv_scraper_client on PATH (a temporary install root)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_install_test_" });
  try {
    const installed = await run(Deno.execPath(), ["task", "install"], {
      cwd: root,
      env: { DENO_INSTALL_ROOT: dir },
    });
    assert.equal(installed.code, 0, installed.stderr);
    const command = join(dir, "bin", "rtcv_scraper_client");
    // Run it as a user would, by name from PATH, from a directory without a deno.json.
    const work = await Deno.makeTempDir({ dir, prefix: "work_" });
    const pathDirs = `${join(dir, "bin")}:${Deno.execPath().replace(/\/[^/]+$/, "")}:/usr/bin:/bin`;
    const child = new Deno.Command("rtcv_scraper_client", {
      cwd: work,
      env: {
        PATH: pathDirs,
        RTCV_SCRAPER_CLIENT_ENV: '{"mock_mode":true}',
        RTCV_SCRAPER_CLIENT_KV: ":memory:",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode('{"type":"ping"}\n{"type":"send_cv","content":{"referenceNumber":"i-1"}}\n'),
    );
    await writer.close();
    const output = await child.output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.equal(
      decoder.decode(output.stdout),
      '{"type":"ready","content":"mock mode (configuration)"}\n{"type":"pong"}\n{"type":"ok","content":true}\n',
    );
    assert.equal(await checkBinary(command), null, "the compile task's check accepts the installed command");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task compile fails loudly and removes the binary when DENORT_BIN is the deno binary (a REPL)", async () => {
  // The task runs on a copy of what it builds from, so the clone's own ./rtcv_scraper_client is never touched.
  const dir = await Deno.makeTempDir({ prefix: "rtcv_compile_repl_test_" });
  try {
    for (const name of ["deno.json", "deno.lock", "main.ts", "src", "scripts"]) {
      const copied = await run("cp", ["-R", join(root, name), join(dir, name)], { cwd: root });
      assert.equal(copied.code, 0, copied.stderr);
    }
    const result = await run(Deno.execPath(), ["task", "compile"], {
      cwd: dir,
      env: { DENORT_BIN: Deno.execPath() },
    });
    assert.notEqual(result.code, 0, "the task must fail");
    assert.match(result.stderr, /rtcv_scraper_client is not a working rtcv_scraper_client and was removed/);
    assert.match(result.stderr, /REPL/, `the message shows what the binary printed: ${result.stderr}`);
    assert.match(result.stderr, /DENORT_BIN/, "and says what to check");
    assert.ok(!(await exists(join(dir, "rtcv_scraper_client"))), "the broken binary is gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the binary check accepts the client and refuses other programs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rtcv_check_binary_test_" });
  try {
    const good = join(dir, "good");
    await Deno.writeTextFile(
      good,
      `#!/bin/sh\nexec ${JSON.stringify(Deno.execPath())} run -A ${
        JSON.stringify(join(root, "main.ts"))
      } "$@"\n`,
    );
    const silent = join(dir, "silent");
    await Deno.writeTextFile(silent, "#!/bin/sh\ncat >/dev/null\n");
    await Deno.chmod(good, 0o755);
    await Deno.chmod(silent, 0o755);
    assert.equal(await checkBinary(good), null);
    assert.match((await checkBinary(silent)) ?? "", /should print .* it printed "" and exited with code 0/);
    assert.match((await checkBinary(join(dir, "missing"))) ?? "", /cannot be started/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
