/**
 * The `--help` text of `rtcv_scraper_client`: its flags and environment variables, one line each.
 *
 * @module
 */

/** Environment variables the client reads, with one line of help each (PROTOCOL.md section 4). */
const ENVIRONMENT: ReadonlyArray<readonly [string, string]> = [
  [
    "LOG_SCRAPER_CLIENT_INPUT",
    "true/1/t: append input lines (keys redacted) to scraper_client_input.log",
  ],
  ["ENABLE_SCRAPER_CLIENT_LOG", "true/1/t: write debug log lines to scraper_client.log"],
  [
    "RTCV_SCRAPER_CLIENT_KV",
    "cache and outbox store: a file path, :memory:, KV Connect or redis:// URL",
  ],
  ["DENO_KV_ACCESS_TOKEN", "access token for a Deno KV Connect URL in RTCV_SCRAPER_CLIENT_KV"],
  ["RTCV_SCRAPER_CLIENT_API_KEY", "api key that -replay puts back where the input log redacted it"],
  ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "timeout of each request attempt in milliseconds (default 20000)"],
  [
    "RTCV_SCRAPER_CLIENT_ENV",
    "JSONC configuration text (servers, mock mode, ingest); wins over _ENV_FILE",
  ],
  ["RTCV_SCRAPER_CLIENT_ENV_FILE", "path of a JSONC configuration file (else env.json, else env.jsonc)"],
  ["RTCV_SCRAPER_CLIENT_ADDRESS", "wrapper mode: host:port of the HTTP routes (default 127.0.0.1:4001-6000)"],
  ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT", "serve GET / (health) and GET /metrics on this port"],
  ["RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST", "address the health check server binds to (default 127.0.0.1)"],
  ["RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES", "longest accepted input line in bytes (default 16777216 = 16 MiB)"],
  [
    "RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS",
    "first wait before an outbox retry (default 1000, doubles, jitter)",
  ],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS", "same refusal this often: dead letter (default 5)"],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS", "retry transient failures this long (default 72 h)"],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS", "lease of an entry being sent (default 30000)"],
  ["RTCV_SCRAPER_CLIENT_DRAIN_MS", "one exit deadline for all deliveries (default 5000)"],
  ["RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS", "testing aid: shifts the client's clock by this many milliseconds"],
  ["RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT", "requests in flight to one server at most, more wait (default 8)"],
  [
    "RTCV_SCRAPER_CLIENT_MAX_PENDING_BYTES",
    "reading pauses past this many bytes of unanswered lines (default 8 MiB)",
  ],
  ["RTCV_SCRAPER_CLIENT_PUBLIC_KEY", "base64 public key of the scraper's NaCl box key pair (login users)"],
  ["RTCV_SCRAPER_CLIENT_PRIVATE_KEY", "base64 private key of that key pair (a secret, like the api key)"],
];

/** The flags, with one line of help each. */
const FLAG_HELP: ReadonlyArray<readonly [string, string]> = [
  ["-h, --help", "print this help and exit"],
  ["-v, --version", "print the version and exit"],
  ["--replay FILE", "run the commands of an input log (scraper_client_input.log) again and time them"],
  ["--replaySkipCommands a,b", "with --replay: command types to skip, comma separated"],
  ["--repeatReplay N", "with --replay: replay the log N times (default 1)"],
];

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`).join("\n");
}

/**
 * The `--help` text: what the program is, its flags and its environment variables, one line each.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./help_text.ts";
 * assert.ok(helpText("0.1.0").startsWith("rtcv_scraper_client 0.1.0\n"));
 * ```
 */
export function helpText(version: string): string {
  return [
    `rtcv_scraper_client ${version}`,
    "",
    "Reads JSON commands from stdin, one per line, answers one JSON line each on stdout, and talks to RT-CV.",
    "",
    "Usage:",
    "  rtcv_scraper_client",
    "  rtcv_scraper_client -replay FILE [-replaySkipCommands a,b] [-repeatReplay N]",
    "  rtcv_scraper_client [flags] [--] <scraper command> [args...]   (wrapper mode: runs the scraper, which",
    "      calls the HTTP routes at $SCRAPER_ADDRESS, as with the Go client v2)",
    "",
    "Flags (one or two dashes; -flag value or -flag=value; the first argument that is not a flag, or --,",
    "ends them):",
    table(FLAG_HELP),
    "",
    "Environment:",
    table(ENVIRONMENT),
    "",
  ].join("\n");
}
