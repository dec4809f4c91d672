/**
 * Start-up configuration of the client: the JSONC document from `RTCV_SCRAPER_CLIENT_ENV` /
 * `RTCV_SCRAPER_CLIENT_ENV_FILE` combined with the client's own environment variables.
 *
 * Precedence, from strongest to weakest:
 * 1. the client's own environment variables (`RTCV_SCRAPER_CLIENT_TIMEOUT_MS`, `RTCV_SCRAPER_CLIENT_KV`,
 *    `RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT`, `RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST`,
 *    `RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES`, `LOG_SCRAPER_CLIENT_INPUT`, `ENABLE_SCRAPER_CLIENT_LOG`);
 * 2. the same setting in the JSONC document (`timeout_ms`, `kv`, `health_check_port`, `health_check_host`,
 *    `max_line_bytes`, `log_input`, `debug_log`);
 * 3. the built-in default.
 *
 * Where the document comes from, in both modes, one order (the Go client v2's): `RTCV_SCRAPER_CLIENT_ENV`
 * (JSONC text), else the file `RTCV_SCRAPER_CLIENT_ENV_FILE` names, else `env.json`, else `env.jsonc` in the
 * working directory; the first one present is used ({@linkcode ClientConfig.configSource} names it). An
 * environment variable set to the empty string counts as not set.
 *
 * @module
 */

import type { ParseError } from "jsonc-parser";
import type { z } from "zod";
import { closestName } from "./closest_name.ts";
import { classifyStoreLocation } from "../store/store_location.ts";

/** Name of the environment variable holding the configuration document as JSONC text. */
export const CONFIG_ENV_VAR = "RTCV_SCRAPER_CLIENT_ENV";
/** Name of the environment variable holding the path of a JSONC configuration file. */
export const CONFIG_FILE_ENV_VAR = "RTCV_SCRAPER_CLIENT_ENV_FILE";

/** Default per-attempt request timeout in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 20_000;
/** Default host the health check server binds to. */
export const DEFAULT_HEALTH_CHECK_HOST = "127.0.0.1";
/** Default first wait before retrying a failed outbox delivery (it doubles, with jitter, up to 5 minutes). */
export const DEFAULT_OUTBOX_RETRY_MS = 1000;
/** Default time exit waits for mirror and ingest deliveries. */
export const DEFAULT_DRAIN_MS = 5000;
/** The same refusal this many times makes an outbox entry a dead letter. */
export const DEFAULT_OUTBOX_MAX_ATTEMPTS = 5;
/** Transient failures are retried this long after an entry was stored: 72 hours. */
export const DEFAULT_OUTBOX_MAX_AGE_MS = 72 * 3600_000;
/** How long a process holds an outbox entry it sends without renewing. */
export const DEFAULT_OUTBOX_LEASE_MS = 30_000;
/** The login-users public key (base64 of 32 bytes). */
export const PUBLIC_KEY_ENV_VAR = "RTCV_SCRAPER_CLIENT_PUBLIC_KEY";
/** The login-users private key (base64 of 32 bytes; a secret). */
export const PRIVATE_KEY_ENV_VAR = "RTCV_SCRAPER_CLIENT_PRIVATE_KEY";
/** Default longest accepted input line, in bytes (16 MiB). */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

// Limits (PROTOCOL.md section 13); read by readLimits at the end of this file.
/** The longest wait a timer can hold: Deno (like browsers) fires longer `setTimeout`s at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Default of `RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT`: requests in flight to one server at most. */
export const DEFAULT_MAX_IN_FLIGHT = 8;
/** The largest accepted `RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT`. */
const MAX_IN_FLIGHT_LIMIT = 10_000;
/** Default of `RTCV_SCRAPER_CLIENT_MAX_PENDING_BYTES`: 8 MiB of lines read and not yet answered. */
export const DEFAULT_MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** One RT-CV server and the API key the client uses for it. */
export interface ServerConfig {
  /** Origin of the server, starting with `http://` or `https://`. */
  serverLocation: string;
  /** Id of the API key. */
  apiKeyId: string;
  /** The API key itself (a secret: never log it). */
  apiKey: string;
}

/** The files looked for in the working directory when no variable names the configuration, in order. */
export const DEFAULT_CONFIG_FILES: readonly string[] = ["env.json", "env.jsonc"];

/** Everything the client reads at start-up. */
export interface ClientConfig {
  /** Where the document came from (`RTCV_SCRAPER_CLIENT_ENV`, the file's path, `env.json`...), or null. */
  configSource: string | null;
  /** Wrapper mode's HTTP address `host:port` (`RTCV_SCRAPER_CLIENT_ADDRESS`); null: 127.0.0.1, 4001-6000. */
  wrapperAddress: { hostname: string; port: number } | null;
  /** The server whose answers count; `null` when the config names no server. */
  primaryServer: ServerConfig | null;
  /** Further servers that receive every CV too. */
  alternativeServers: ServerConfig[];
  /** Start in mock mode (no network). */
  mockMode: boolean;
  /** Mock answer for `get_users_secret` (its first entry for `get_user_secret`), or `null`. */
  mockUsers: { username: string; password: string }[] | null;
  /** Mock secrets by key; they win over `mockUsers`. */
  mockSecrets: Record<string, unknown>;
  /**
   * The login-users key pair (base64 of 32 bytes each) from `RTCV_SCRAPER_CLIENT_PUBLIC_KEY` /
   * `RTCV_SCRAPER_CLIENT_PRIVATE_KEY` or the document's `public_key` / `private_key`, or `null`. `source`
   * names where it came from. `privateKey` is a secret. Checked when credentials are set.
   */
  keyPair: { publicKey: string; privateKey: string; source: string } | null;
  /** The job-data ingestion server, or `null`. `token` is a secret. */
  ingest: { baseUrl: string; token: string } | null;
  /** Per-attempt request timeout (`RTCV_SCRAPER_CLIENT_TIMEOUT_MS`), default 20000. */
  timeoutMs: number;
  /** Location of the store (`RTCV_SCRAPER_CLIENT_KV`); `null` means the default location. */
  kvPath: string | null;
  /** Port of the health check server (`RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT`); `null` means none. */
  healthCheckPort: number | null;
  /** Host the health check server binds to (`RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST`), default 127.0.0.1. */
  healthCheckHost: string;
  /** Longest accepted input line in bytes (`RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES`), default 16 MiB. */
  maxLineBytes: number;
  /** First wait before retrying a failed mirror delivery (`RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS`), default 1000. */
  outboxRetryMs: number;
  /** The same refusal this many times makes a dead letter (`RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS`), default 5. */
  outboxMaxAttempts: number;
  /** How long transient failures are retried (`RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS`), default 72 h. */
  outboxMaxAgeMs: number;
  /** How long an entry is leased to the process sending it (`RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS`), default 30000. */
  outboxLeaseMs: number;
  /** How long exit waits for mirror and ingest deliveries (`RTCV_SCRAPER_CLIENT_DRAIN_MS`), default 5000. */
  drainMs: number;
  /** Testing aid: shifts the client's clock (`RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS`, environment only), default 0. */
  clockOffsetMs: number;
  /** Append every input line to `scraper_client_input.log` (`LOG_SCRAPER_CLIENT_INPUT`). */
  logInput: boolean;
  /** Write debug log lines to `scraper_client.log` (`ENABLE_SCRAPER_CLIENT_LOG`). */
  debugLog: boolean;
  /** Requests in flight to one server at most (`RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT`), default 8. */
  maxInFlight: number;
  /** Bytes of input lines read and not yet answered before reading pauses (`..._MAX_PENDING_BYTES`), 8 MiB. */
  maxPendingBytes: number;
}

/**
 * The configuration could not be read or is invalid. The program should print the message to stderr and exit
 * with code 2 before writing the ready line. Messages never contain secret values nor excerpts of the
 * document.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError, loadConfig } from "./config.ts";
 * const env = new Map([["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "soon"]]);
 * await assert.rejects(loadConfig(env), (err) => {
 *   assert.ok(err instanceof ConfigError);
 *   assert.equal(err.source, "RTCV_SCRAPER_CLIENT_TIMEOUT_MS");
 *   assert.equal(err.field, "timeout_ms");
 *   return true;
 * });
 * ```
 */
export class ConfigError extends Error {
  /**
   * Where the bad value came from, as it is named at the start of the message: an environment variable name
   * (`RTCV_SCRAPER_CLIENT_ENV`, `RTCV_SCRAPER_CLIENT_TIMEOUT_MS`, ...) or `RTCV_SCRAPER_CLIENT_ENV_FILE <path>`.
   */
  readonly source: string;
  /**
   * Path of the offending field in the document (`alternative_servers[1].api_key`), the config field an
   * environment variable sets (`timeout_ms`), or `""` when the problem concerns the whole document.
   */
  readonly field: string;

  /** Builds the message `<source>: <field> <problem>` (or `<source>: <problem>` without a field). */
  constructor(source: string, field: string, problem: string, options?: ErrorOptions) {
    super(field === "" ? `${source}: ${problem}` : `${source}: ${field} ${problem}`, options);
    this.name = "ConfigError";
    this.source = source;
    this.field = field;
  }
}

/** Read access to environment variables; `Deno.env` and a `Map` both fit. */
export interface EnvReader {
  /** The variable's value, or `undefined` when it is not set. */
  get(name: string): string | undefined;
}

// ---------------------------------------------------------------------------------------------------------
// The document schema (snake_case, as the later Go client names the fields). Every object is strict: an
// unknown field is an error naming it and the closest known name, read from the schema itself (add a field
// to the schema and it is known).
// Built on first use: zod is loaded only when there is a document (it and the schema cost ~20 ms of the
// start-up, before the ready line).

type Zod = typeof import("zod").z;

function buildSchemas(z: Zod) {
  const nonEmptyString = z.string().min(1);
  const httpUrl = z.string().regex(/^https?:\/\/.+/i, { error: "must start with http:// or https://" });

  const serverSchema = z.strictObject({
    server_location: httpUrl,
    api_key_id: nonEmptyString,
    api_key: nonEmptyString,
  });

  const documentSchema = z.strictObject({
    primary_server: serverSchema.nullish(),
    alternative_servers: z.array(serverSchema).nullish(),
    mock_mode: z.boolean().nullish(),
    mock_users: z.array(z.strictObject({ username: z.string(), password: z.string() })).nullish(),
    mock_secrets: z.record(z.string(), z.unknown()).nullish(),
    public_key: nonEmptyString.nullish(),
    private_key: nonEmptyString.nullish(),
    ingest: z.strictObject({ base_url: httpUrl, token: nonEmptyString }).nullish(),
    timeout_ms: z.number().int().min(1).nullish(),
    kv: nonEmptyString.nullish(),
    health_check_port: z.number().int().min(0).max(65535).nullish(),
    health_check_host: nonEmptyString.nullish(),
    max_line_bytes: z.number().int().min(1).nullish(),
    outbox_retry_ms: z.number().int().min(1).nullish(),
    outbox_max_attempts: z.number().int().min(1).max(1000).nullish(),
    outbox_max_age_ms: z.number().int().min(1).nullish(),
    outbox_lease_ms: z.number().int().min(100).nullish(),
    drain_ms: z.number().int().min(0).nullish(),
    log_input: z.boolean().nullish(),
    debug_log: z.boolean().nullish(),
    // Limits (see "Limits" below).
    max_in_flight: z.number().int().min(1).max(MAX_IN_FLIGHT_LIMIT).nullish(),
    max_pending_bytes: z.number().int().min(1).nullish(),
  });
  return { serverSchema, documentSchema };
}

type Schemas = ReturnType<typeof buildSchemas>;
type ConfigDocument = z.infer<Schemas["documentSchema"]>;

let schemas: Schemas | null = null;

/** The schemas, built once (loading zod the first time). */
async function loadSchemas(): Promise<Schemas> {
  schemas ??= buildSchemas((await import("zod")).z);
  return schemas;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "an object",
  record: "an object",
  array: "an array",
};

/** Describes a value's JSON type without ever showing the value. */
function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return Number.isInteger(value) ? "an integer" : "a number";
    case "boolean":
      return "a boolean";
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/**
 * Error map for zod: turns an issue into "must be ..." text. It looks at the type of the input only, never at
 * its value, so secrets cannot leak into messages.
 */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type": {
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return `is missing: expected ${expected}`;
      if (issue.expected === "int") return "must be an integer";
      return `must be ${expected}, not ${jsonTypeOf(issue.input)}`;
    }
    case "too_small":
      if (issue.origin === "string") return "must not be empty";
      if (issue.origin === "number") {
        return issue.minimum === 1 ? "must be a positive integer" : `must be at least ${issue.minimum}`;
      }
      return `must have at least ${issue.minimum} entries`;
    case "too_big":
      return `must be at most ${issue.maximum}`;
    default:
      return undefined; // keep the schema's own message (e.g. the http:// rule)
  }
}

/** The field names the schema knows for the object at `path` of the document (`[]` for the top). */
function knownFieldsAt(path: readonly PropertyKey[]): string[] {
  if (schemas === null) return []; // only asked while a document is parsed, after loadSchemas()
  let schema: z.core.$ZodType = schemas.documentSchema;
  for (const part of [...path, null]) {
    // Look through optional / nullable wrappers and into arrays to the object at this level.
    for (;;) {
      const def = schema._zod.def as { type: string; innerType?: z.core.$ZodType; element?: z.core.$ZodType };
      if ((def.type === "optional" || def.type === "nullable") && def.innerType) schema = def.innerType;
      else if (def.type === "array" && def.element && typeof part === "number") {
        schema = def.element;
        break;
      } else break;
    }
    if (part === null || typeof part === "number") continue;
    const shape = (schema as { shape?: Record<string, z.core.$ZodType> }).shape;
    if (shape === undefined || !(String(part) in shape)) return [];
    schema = shape[String(part)];
  }
  const shape = (schema as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

/** `is not a known field (did you mean mock_users?)`; the key is a name, never a value. */
function unknownFieldProblem(path: readonly PropertyKey[], key: string): string {
  const known = knownFieldsAt(path);
  const closest = closestName(key, known);
  return closest === null
    ? "is not a known field"
    : `is not a known field: did you mean ${closest}? (known fields here: ${known.join(", ")})`;
}

/** `["alternative_servers", 1, "api_key"]` → `alternative_servers[1].api_key`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

const PARSE_ERROR_TEXT: Record<string, string> = {
  InvalidSymbol: "unexpected character",
  InvalidNumberFormat: "invalid number",
  PropertyNameExpected: "expected a property name in double quotes",
  ValueExpected: "expected a value",
  ColonExpected: "expected ':' after the property name",
  CommaExpected: "expected ',' between entries",
  CloseBraceExpected: "expected '}' to close the object",
  CloseBracketExpected: "expected ']' to close the array",
  EndOfFileExpected: "unexpected text after the end of the document",
  InvalidCommentToken: "invalid comment",
  UnexpectedEndOfComment: "unterminated comment",
  UnexpectedEndOfString: "unterminated string",
  UnexpectedEndOfNumber: "unterminated number",
  InvalidUnicode: "invalid unicode escape",
  InvalidEscapeCharacter: "invalid escape character",
  InvalidCharacter: "invalid character in string",
};

/** 1-based line and column of a character offset (`\r\n`, `\r` and `\n` end lines). */
function lineColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) {
      line++;
      lineStart = i + 1;
    }
  }
  return `${line}:${end - lineStart + 1}`;
}

/** Parses and validates the JSONC text; `source` names it in errors. */
async function parseDocument(text: string, source: string): Promise<ConfigDocument> {
  // Loaded only when there is a document: it is a CommonJS package and costs ~20 ms of start-up.
  const { parse: parseJsonc, printParseErrorCode, stripComments } = await import("jsonc-parser");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte order mark
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0];
    const code = printParseErrorCode(first.error);
    if (
      value === undefined && errors.length === 1 && code === "ValueExpected" &&
      stripComments(text).trim() === ""
    ) {
      // Only comments and whitespace (e.g. a template with everything commented out): an empty configuration.
      return {};
    }
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more syntax errors)` : "";
    throw new ConfigError(
      source,
      "",
      `cannot parse JSONC at ${lineColumn(text, first.offset)}: ${PARSE_ERROR_TEXT[code] ?? code}${more}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(source, "", `must be a JSON object, not ${jsonTypeOf(value)}`);
  }
  const { documentSchema } = await loadSchemas();
  const result = documentSchema.safeParse(value, { error: describeIssue });
  if (!result.success) {
    // A misspelled field also shows up as the missing field it was meant to be: name the misspelling.
    const issue = result.error.issues.find((i) => i.code === "unrecognized_keys") ?? result.error.issues[0];
    const more = result.error.issues.length > 1
      ? ` (and ${result.error.issues.length - 1} more problems)`
      : "";
    if (issue.code === "unrecognized_keys") {
      const [key] = issue.keys;
      throw new ConfigError(
        source,
        formatPath([...issue.path, key]),
        `${unknownFieldProblem(issue.path, key)}${more}`,
      );
    }
    throw new ConfigError(source, formatPath(issue.path), `${issue.message}${more}`);
  }
  const doc = result.data;
  const servers = [
    doc.primary_server && "primary_server",
    doc.alternative_servers?.length && "alternative_servers",
  ]
    .filter((name): name is string => typeof name === "string");
  if (doc.mock_mode === true && servers.length > 0) {
    throw new ConfigError(
      source,
      "mock_mode",
      `is true together with ${servers.join(" and ")}: mock mode contacts no server; ` +
        `remove mock_mode or ${servers.join(" and ")}`,
    );
  }
  if ((doc.alternative_servers?.length ?? 0) > 0 && !doc.primary_server) {
    throw new ConfigError(
      source,
      "alternative_servers",
      "needs primary_server: set primary_server to the server whose answers count",
    );
  }
  return doc;
}

/** Reads the document named by the environment (or found in the working directory), or `{}` without one. */
async function readDocument(
  env: EnvReader,
  readTextFile: (path: string) => string,
): Promise<{ doc: ConfigDocument; source: string | null }> {
  const text = nonEmpty(env.get(CONFIG_ENV_VAR));
  if (text !== undefined) return { doc: await parseDocument(text, CONFIG_ENV_VAR), source: CONFIG_ENV_VAR };
  const path = nonEmpty(env.get(CONFIG_FILE_ENV_VAR));
  if (path === undefined) {
    for (const name of DEFAULT_CONFIG_FILES) {
      let content: string;
      try {
        content = readTextFile(name);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw new ConfigError(name, "", `cannot read the file: ${describeReadError(err)}`, { cause: err });
      }
      return { doc: await parseDocument(content, name), source: name };
    }
    return { doc: {}, source: null };
  }
  const source = `${CONFIG_FILE_ENV_VAR} ${path}`;
  let content: string;
  try {
    content = readTextFile(path);
  } catch (err) {
    throw new ConfigError(source, "", `cannot read the file: ${describeReadError(err)}`, { cause: err });
  }
  return { doc: await parseDocument(content, source), source };
}

/** `RTCV_SCRAPER_CLIENT_ADDRESS=host:port` (wrapper mode), or null when not set. */
function envAddress(env: EnvReader): { hostname: string; port: number } | null {
  const raw = nonEmpty(env.get("RTCV_SCRAPER_CLIENT_ADDRESS"));
  if (raw === undefined) return null;
  const match = /^(.+):([0-9]{1,5})$/.exec(raw.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new ConfigError(
      "RTCV_SCRAPER_CLIENT_ADDRESS",
      "",
      "must be host:port, e.g. 127.0.0.1:4001 (a port from 0 to 65535)",
    );
  }
  return { hostname: match[1].replace(/^\[(.*)\]$/, "$1"), port };
}

function describeReadError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "it does not exist";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (err instanceof Error) return err.name;
  return "unknown error";
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** Parses a whole-number environment variable; `field` is the document field it overrides. */
function envInteger(
  env: EnvReader,
  name: string,
  field: string,
  min: number,
  max: number,
  what: string,
): number | undefined {
  const raw = nonEmpty(env.get(name));
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  const value = /^[0-9]+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const shown = raw.length > 40 ? `${raw.slice(0, 40)}...` : raw;
    throw new ConfigError(name, field, `must be ${what}, got ${JSON.stringify(shown)}`);
  }
  return value;
}

/** `true`, `1` and `t` (any case) mean on, anything else off; unset means "not given". */
function envFlag(env: EnvReader, name: string): boolean | undefined {
  const raw = nonEmpty(env.get(name));
  if (raw === undefined) return undefined;
  return ["true", "1", "t"].includes(raw.trim().toLowerCase());
}

/** A store location that names no store (`ftp://...`) or a malformed Redis URL is a config error. */
function checkStoreLocation(location: string, source: string): void {
  try {
    classifyStoreLocation(location);
  } catch (error) {
    // The message never holds the value: a Redis URL may carry a password.
    throw new ConfigError(source, "kv", error instanceof Error ? error.message : String(error));
  }
}

/** The key pair: both environment variables, else both document fields; one without the other is an error. */
function readKeyPair(env: EnvReader, doc: ConfigDocument): ClientConfig["keyPair"] {
  const publicKey = nonEmpty(env.get(PUBLIC_KEY_ENV_VAR));
  const privateKey = nonEmpty(env.get(PRIVATE_KEY_ENV_VAR));
  if (publicKey !== undefined || privateKey !== undefined) {
    if (publicKey === undefined) {
      throw new ConfigError(PUBLIC_KEY_ENV_VAR, "", `must be set with ${PRIVATE_KEY_ENV_VAR}`);
    }
    if (privateKey === undefined) {
      throw new ConfigError(PRIVATE_KEY_ENV_VAR, "", `must be set with ${PUBLIC_KEY_ENV_VAR}`);
    }
    return { publicKey, privateKey, source: `${PUBLIC_KEY_ENV_VAR} / ${PRIVATE_KEY_ENV_VAR}` };
  }
  const docPublic = doc.public_key ?? undefined;
  const docPrivate = doc.private_key ?? undefined;
  if (docPublic === undefined && docPrivate === undefined) return null;
  if (docPublic === undefined || docPrivate === undefined) {
    const missing = docPublic === undefined ? "public_key" : "private_key";
    throw new ConfigError("configuration", missing, "is missing: public_key and private_key go together");
  }
  return { publicKey: docPublic, privateKey: docPrivate, source: "the config's public_key / private_key" };
}

function toServer(s: z.infer<Schemas["serverSchema"]>): ServerConfig {
  return { serverLocation: s.server_location, apiKeyId: s.api_key_id, apiKey: s.api_key };
}

function defaultReadTextFile(path: string): string {
  return Deno.readTextFileSync(path);
}

/**
 * Reads the start-up configuration from the environment (and the file `RTCV_SCRAPER_CLIENT_ENV_FILE` names).
 * See the module documentation for the precedence rules.
 *
 * @param env where environment variables are read, e.g. `Deno.env`.
 * @param readTextFile reads the config file; defaults to `Deno.readTextFileSync`. Tests inject a fake.
 * @throws {ConfigError} when the document cannot be read, is not valid JSONC, has a field of the wrong type or
 * value, or when a numeric environment variable is not a valid number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfig } from "./config.ts";
 * const config = await loadConfig(new Map([
 *   ["RTCV_SCRAPER_CLIENT_ENV", '{\n  // comments and trailing commas are fine\n  "mock_mode": true,\n  "timeout_ms": 5000,\n}'],
 * ]));
 * assert.equal(config.mockMode, true);
 * assert.equal(config.timeoutMs, 5000);
 * ```
 */
export async function loadConfig(
  env: EnvReader,
  readTextFile: (path: string) => string = defaultReadTextFile,
): Promise<ClientConfig> {
  const { doc, source: configSource } = await readDocument(env, readTextFile);
  const limits = readLimits(env, doc);

  const timeoutMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_TIMEOUT_MS",
    "timeout_ms",
    1,
    Number.MAX_SAFE_INTEGER,
    "a positive integer number of milliseconds",
  );
  const healthCheckPort = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_HEALTH_CHECK_PORT",
    "health_check_port",
    0,
    65535,
    "a port number from 0 to 65535",
  );
  const outboxRetryMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS",
    "outbox_retry_ms",
    1,
    Number.MAX_SAFE_INTEGER,
    "a positive integer number of milliseconds",
  );
  const outboxMaxAttempts = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_OUTBOX_MAX_ATTEMPTS",
    "outbox_max_attempts",
    1,
    1000,
    "a whole number from 1 to 1000",
  );
  const outboxMaxAgeMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS",
    "outbox_max_age_ms",
    1,
    Number.MAX_SAFE_INTEGER,
    "a positive integer number of milliseconds",
  );
  const outboxLeaseMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS",
    "outbox_lease_ms",
    100,
    Number.MAX_SAFE_INTEGER,
    "a whole number of milliseconds, 100 or more",
  );
  const drainMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_DRAIN_MS",
    "drain_ms",
    0,
    Number.MAX_SAFE_INTEGER,
    "a whole number of milliseconds",
  );
  const clockOffsetMs = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_CLOCK_OFFSET_MS",
    "clock_offset_ms",
    0,
    Number.MAX_SAFE_INTEGER,
    "a whole number of milliseconds",
  );
  const maxLineBytes = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES",
    "max_line_bytes",
    1,
    Number.MAX_SAFE_INTEGER,
    "a positive integer number of bytes",
  );

  const kvFromEnv = nonEmpty(env.get("RTCV_SCRAPER_CLIENT_KV"));
  const kvPath = kvFromEnv ?? doc.kv ?? null;
  if (kvPath !== null) {
    checkStoreLocation(kvPath, kvFromEnv !== undefined ? "RTCV_SCRAPER_CLIENT_KV" : documentSource(env));
  }
  const keyPair = readKeyPair(env, doc);

  return {
    configSource,
    wrapperAddress: envAddress(env),
    keyPair,
    primaryServer: doc.primary_server ? toServer(doc.primary_server) : null,
    alternativeServers: (doc.alternative_servers ?? []).map(toServer),
    mockMode: doc.mock_mode ?? false,
    mockUsers: doc.mock_users
      ? doc.mock_users.map((u) => ({ username: u.username, password: u.password }))
      : null,
    mockSecrets: doc.mock_secrets ?? {},
    ingest: doc.ingest ? { baseUrl: doc.ingest.base_url, token: doc.ingest.token } : null,
    timeoutMs: timeoutMs ?? doc.timeout_ms ?? DEFAULT_TIMEOUT_MS,
    kvPath,
    healthCheckPort: healthCheckPort ?? doc.health_check_port ?? null,
    healthCheckHost: nonEmpty(env.get("RTCV_SCRAPER_CLIENT_HEALTH_CHECK_HOST")) ?? doc.health_check_host ??
      DEFAULT_HEALTH_CHECK_HOST,
    maxLineBytes: maxLineBytes ?? doc.max_line_bytes ?? DEFAULT_MAX_LINE_BYTES,
    outboxRetryMs: outboxRetryMs ?? doc.outbox_retry_ms ?? DEFAULT_OUTBOX_RETRY_MS,
    outboxMaxAttempts: outboxMaxAttempts ?? doc.outbox_max_attempts ?? DEFAULT_OUTBOX_MAX_ATTEMPTS,
    outboxMaxAgeMs: outboxMaxAgeMs ?? doc.outbox_max_age_ms ?? DEFAULT_OUTBOX_MAX_AGE_MS,
    outboxLeaseMs: outboxLeaseMs ?? doc.outbox_lease_ms ?? DEFAULT_OUTBOX_LEASE_MS,
    drainMs: drainMs ?? doc.drain_ms ?? DEFAULT_DRAIN_MS,
    clockOffsetMs: clockOffsetMs ?? 0,
    logInput: envFlag(env, "LOG_SCRAPER_CLIENT_INPUT") ?? doc.log_input ?? false,
    debugLog: envFlag(env, "ENABLE_SCRAPER_CLIENT_LOG") ?? doc.debug_log ?? false,
    ...limits,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Limits (PROTOCOL.md section 13): requests in flight per server, pending input, and the cap on every
// setting that becomes a timer.

/**
 * The settings that become timers, by environment variable and document field. The clock offset is not
 * one (it is added to the time, never waited for), so it may be larger.
 */
const TIMER_SETTINGS = [
  ["RTCV_SCRAPER_CLIENT_TIMEOUT_MS", "timeout_ms"],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_RETRY_MS", "outbox_retry_ms"],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_MAX_AGE_MS", "outbox_max_age_ms"],
  ["RTCV_SCRAPER_CLIENT_OUTBOX_LEASE_MS", "outbox_lease_ms"],
  ["RTCV_SCRAPER_CLIENT_DRAIN_MS", "drain_ms"],
] as const;

/** Reads the limits and checks every timer setting against {@link MAX_TIMER_MS}, naming the one too large. */
function readLimits(
  env: EnvReader,
  doc: ConfigDocument,
): Pick<ClientConfig, "maxInFlight" | "maxPendingBytes"> {
  const tooLong = `must be at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest a timer can wait)`;
  for (const [name, field] of TIMER_SETTINGS) {
    const raw = nonEmpty(env.get(name))?.trim();
    if (raw !== undefined) {
      if (/^[0-9]+$/.test(raw) && Number(raw) > MAX_TIMER_MS) {
        throw new ConfigError(name, field, `${tooLong}, got ${JSON.stringify(raw.slice(0, 40))}`);
      }
    } else if ((doc[field] ?? 0) > MAX_TIMER_MS) {
      throw new ConfigError(documentSource(env), field, `${tooLong}, got ${doc[field]}`);
    }
  }
  const maxInFlight = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_MAX_IN_FLIGHT",
    "max_in_flight",
    1,
    MAX_IN_FLIGHT_LIMIT,
    `a whole number of requests from 1 to ${MAX_IN_FLIGHT_LIMIT}`,
  );
  const maxPendingBytes = envInteger(
    env,
    "RTCV_SCRAPER_CLIENT_MAX_PENDING_BYTES",
    "max_pending_bytes",
    1,
    Number.MAX_SAFE_INTEGER,
    "a positive integer number of bytes",
  );
  return {
    maxInFlight: maxInFlight ?? doc.max_in_flight ?? DEFAULT_MAX_IN_FLIGHT,
    maxPendingBytes: maxPendingBytes ?? doc.max_pending_bytes ?? DEFAULT_MAX_PENDING_BYTES,
  };
}

/** How errors name the configuration document the environment points at. */
function documentSource(env: EnvReader): string {
  if (nonEmpty(env.get(CONFIG_ENV_VAR)) !== undefined) return CONFIG_ENV_VAR;
  return `${CONFIG_FILE_ENV_VAR} ${env.get(CONFIG_FILE_ENV_VAR)}`;
}
