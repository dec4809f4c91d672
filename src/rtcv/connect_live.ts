import type { CachedReferences } from "../cache/cached_references.ts";
import type { ClientCore } from "../client_core.ts";
import { CommandError } from "../commands/command_error.ts";
import type { ServerCredentials } from "../commands/session_commands.ts";
import { RtcvApiClient } from "./api_client.ts";
import { LiveBackend } from "./live_backend.ts";
import { checkKeyPair, type KeyPairText, LoginKeyPair, type LoginUsersRoute } from "./login_users.ts";
import type { RequestPolicy } from "./request_policy.ts";

/** RT-CV's role number for scraper keys. */
export const SCRAPER_ROLE = 1;
/** How many days of scanned reference numbers warm the cache. */
export const WARM_UP_DAYS = 30;

/** What live mode needs besides the credentials. */
export interface LiveOptions {
  readonly policy: RequestPolicy;
  /** Debug log lines. */
  readonly log: (message: string) => void;
  /** Told about each CV delivery per server (metrics). */
  readonly onCvResult?: (origin: string, ok: boolean) => void;
  /** Warnings for a person (stderr and the debug log). */
  readonly warn?: (message: string) => void;
  /**
   * The login-users key pair from the config or the environment; a pair in the credentials wins. `source`
   * names where it came from, for messages (never the keys).
   */
  readonly keyPair?: (KeyPairText & { readonly source: string }) | null;
}

/**
 * Checks every server in parallel (health, then a key with the scraper role), warms the cache from the
 * primary, and builds the live backend (its `start` resumes outbox delivery to servers named again). Any failure is a
 * {@link CommandError} naming the server's origin and the step; nothing about the session changes then.
 */
export async function connectLive(
  servers: ServerCredentials[],
  core: ClientCore,
  options: LiveOptions,
): Promise<LiveBackend> {
  const clients = await Promise.all(servers.map(async (server) => {
    try {
      return await RtcvApiClient.create(server, options.policy);
    } catch (error) {
      throw new CommandError(error instanceof Error ? error.message : String(error));
    }
  }));
  const primaryIndex = servers.findIndex((server) => server.primary);
  // A broken key pair fails before any server is contacted.
  const keyPair = await pickKeyPair(servers[primaryIndex], options);
  const roleOf = (index: number) => index === primaryIndex ? "primary" : "mirror";
  const checks = await Promise.allSettled(clients.map((client) => checkServer(client)));
  const failures = checks.flatMap((check, index) =>
    check.status === "rejected" ? [`${roleOf(index)} ${describe(check.reason)}`] : []
  );
  if (failures.length > 0) throw new CommandError(failures.join("; "));

  const primary = clients[primaryIndex];
  let loginUsersRoute: LoginUsersRoute = "not_checked";
  if (keyPair !== null) loginUsersRoute = await checkKeyPair(primary, keyPair, options.log);
  const references = await core.session.persistentCache();
  await warmUp(primary, references, options.log);

  const outbox = await core.outbox();
  // The outbox retries by itself: its clients make one request per attempt.
  const deliveryClient = (index: number) =>
    RtcvApiClient.create(servers[index], { ...options.policy, maxRetries: 0 });
  const mirrorIndexes = clients.flatMap((_, index) => index === primaryIndex ? [] : [index]);
  const deliveryClients = {
    mirrors: await Promise.all(mirrorIndexes.map(deliveryClient)),
    primary: await deliveryClient(primaryIndex),
  };
  options.log(
    `live: primary ${primary.origin}, mirrors [${deliveryClients.mirrors.map((m) => m.origin).join(", ")}]`,
  );
  return new LiveBackend({
    primary,
    deliveryClients,
    references,
    outbox,
    onPrimaryResult: (ok) => options.onCvResult?.(primary.origin, ok),
    keyPair,
    loginUsersRoute,
    warn: options.warn ?? options.log,
  });
}

/** The key pair of the primary's credentials, else the configured one; checked (a CommandError if broken). */
async function pickKeyPair(primary: ServerCredentials, options: LiveOptions): Promise<LoginKeyPair | null> {
  const { publicKey, privateKey } = primary;
  if (publicKey !== undefined || privateKey !== undefined) {
    if (publicKey === undefined || privateKey === undefined) {
      throw new CommandError("public_key and private_key must be given together (the login-users key pair)");
    }
    return await LoginKeyPair.from({ publicKey, privateKey }, "set_credentials");
  }
  return options.keyPair ? await LoginKeyPair.from(options.keyPair, options.keyPair.source) : null;
}

/**
 * Caches the reference numbers the primary scanned recently. Best effort: the newest servers removed the
 * route (500 `Cannot GET`), older ones may answer 404 or junk; whatever happens, it is logged and skipped.
 */
async function warmUp(
  primary: RtcvApiClient,
  references: CachedReferences,
  log: (message: string) => void,
): Promise<void> {
  const route = `GET /api/v1/scraper/scannedReferenceNrs/since/days/${WARM_UP_DAYS}`;
  let recent: string[];
  try {
    // One attempt: a convenience must not hold set_credentials up for a timeout times the retries.
    recent = await primary.scannedReferenceNrs(WARM_UP_DAYS, undefined, { retries: 0 });
  } catch (error) {
    log(`warm-up skipped (${route}): primary ${describe(error)}`);
    return;
  }
  await references.setManyLong(recent);
  log(`warm-up: cached ${recent.length} reference numbers from primary ${primary.origin} (${route})`);
}

async function checkServer(client: RtcvApiClient): Promise<void> {
  try {
    await client.health();
  } catch (error) {
    throw new StepError("health check", error);
  }
  let roles: number[];
  try {
    roles = (await client.keyInfo()).roles.map((entry) => entry.role);
  } catch (error) {
    throw new StepError("key check", error);
  }
  if (!roles.includes(SCRAPER_ROLE)) {
    throw new StepError(
      "key check",
      new Error(
        `${client.origin}: api key ${client.apiKeyId} does not have the scraper role (${SCRAPER_ROLE}); ` +
          `its roles are [${roles.join(", ")}]`,
      ),
    );
  }
}

/** A server failed one step of the checks; the message names the step and what the server said. */
class StepError extends Error {
  constructor(step: string, cause: unknown) {
    super(`${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
