/**
 * Checks that a built `rtcv_scraper_client` binary is the client: started in mock mode (no network, an
 * in-memory store), it must write the ready line and answer `{"type":"ping"}` with `{"type":"pong"}`, and
 * exit 0 at the end of its input, within 30 s. Anything else (a Deno REPL, which `deno compile` leaves when
 * `DENORT_BIN` names the `deno` binary instead of a `denort`, a crash, a hang) removes the binary and exits 1
 * with what it printed, so a broken build never gets copied into an image.
 *
 *     deno run --allow-run --allow-write --allow-env=PATH scripts/check_binary.ts ./rtcv_scraper_client
 *
 * @module
 */
// deno-lint-ignore-file no-console -- a build step: its report is for the person running it

const READY = '{"type":"ready","content":"mock mode (configuration)"}';
const PONG = '{"type":"pong"}';
const TIMEOUT_MS = 30_000;

/** Why the binary at `path` is not a working client, or `null` when it is. */
export async function checkBinary(path: string): Promise<string | null> {
  let child: Deno.ChildProcess;
  try {
    // A bare name is the file here, not a program on PATH.
    child = new Deno.Command(path.includes("/") ? path : `./${path}`, {
      args: [],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        RTCV_SCRAPER_CLIENT_ENV: '{"mock_mode":true}',
        RTCV_SCRAPER_CLIENT_KV: ":memory:",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    return `it cannot be started: ${error instanceof Error ? error.message : String(error)}`;
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  try {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(`{"type":"ping"}\n`)).catch(() => {});
    await writer.close().catch(() => {});
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr).trim();
    const expected = `${READY}\n${PONG}\n`;
    if (output.signal === "SIGKILL") {
      return `it did not exit within ${TIMEOUT_MS / 1000} s of the end of its input`;
    }
    if (stdout !== expected || output.code !== 0) {
      const excerpt = (text: string) => JSON.stringify(text.length > 400 ? `${text.slice(0, 400)}...` : text);
      return `a mock session (ping) should print ${JSON.stringify(expected)} and exit 0; it printed ` +
        `${excerpt(stdout)} and exited with code ${output.code}` +
        (stderr ? `; stderr: ${excerpt(stderr)}` : "");
    }
    return null;
  } finally {
    clearTimeout(timer);
  }
}

if (import.meta.main) {
  const path = Deno.args[0];
  if (path === undefined || Deno.args.length !== 1) {
    console.error(
      "usage: deno run --allow-run --allow-write --allow-env=PATH scripts/check_binary.ts <binary>",
    );
    Deno.exit(2);
  }
  const problem = await checkBinary(path);
  if (problem !== null) {
    await Deno.remove(path).catch(() => {});
    console.error(
      `check_binary: ${path} is not a working rtcv_scraper_client and was removed: ${problem}\n` +
        "(is DENORT_BIN set to the deno binary? It must name a denort binary of the same version, or be unset)",
    );
    Deno.exit(1);
  }
  console.error(`check_binary: ${path} answers a ping with pong in mock mode`);
}
