import type { CachedReferences } from "../cache/cached_references.ts";
import type { ServerCredentials } from "../commands/session_commands.ts";
import { ClientError } from "../errors.ts";
import type { RequestPolicy } from "../http/request_policy.ts";
import type { Outbox } from "../outbox/outbox.ts";
import { RtcvApiClient } from "./api_client.ts";
import { ConnectError } from "./connect_error.ts";
import { LiveBackend } from "./live_backend.ts";
import {
  checkKeyPair,
  KeyPairError,
  type KeyPairText,
  LoginKeyPair,
  type LoginUsersRoute,
} from "./login_users.ts";
import type { ServerRequests } from "./server_requests.ts";

/** RT-CV's role number for scraper keys. */
export const SCRAPER_ROLE = 1;
/** How many days of scanned reference numbers warm the cache. */
export const WARM_UP_DAYS = 30;

/** What live mode uses of the rest of the client: the persistent reference cache and the one outbox. */
export interface LiveDeps {
  /** Opens (once) the persistent reference cache that live mode answers from and warms up. */
  readonly openReferenceCache: () => Promise<CachedReferences>;
  /** Opens (once) the outbox that carries the mirrors' copies. */
  readonly openOutbox: () => Promise<Outbox>;
}

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
  /** Where requests from the servers' websockets go; without it no websocket is opened. */
  readonly serverRequests?: ServerRequests;
}

/**
 * Checks every server in parallel (health, then a key with the scraper role), warms the cache from the
 * primary, and builds the live backend (its `start` resumes outbox delivery to servers named again). Any
 * failure the scraper can act on is a {@link ConnectError} naming the server's origin and the step; nothing
 * about the session changes then.
 */
export async function connectLive(
  servers: ServerCredentials[],
  deps: LiveDeps,
  options: LiveOptions,
): Promise<LiveBackend> {
  try {
    return await connect(servers, deps, options);
  } catch (error) {
    // A broken key pair, a login-users check or the store failed under connecting: the same words, as
    // this step's error.
    if (error instanceof ClientError && !(error instanceof ConnectError)) {
      throw new ConnectError(error.message, { cause: error });
    }
    throw error;
  }
}

async function connect(
  servers: ServerCredentials[],
  deps: LiveDeps,
  options: LiveOptions,
): Promise<LiveBackend> {
  const clients = await Promise.all(servers.map(async (server) => {
    try {
      return await RtcvApiClient.create(server, options.policy);
    } catch (error) {
      // The credentials' form (`server_location`, an empty key): a TypeError naming the field.
      throw new ConnectError(error instanceof Error ? error.message : String(error), { cause: error });
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
  if (failures.length > 0) throw new ConnectError(failures.join("; "));

  const primary = clients[primaryIndex];
  let loginUsersRoute: LoginUsersRoute = "not_checked";
  if (keyPair !== null) loginUsersRoute = await checkKeyPair(primary, keyPair, options.log);
  const references = await deps.openReferenceCache();
  await warmUp(primary, references, options.log);

  const outbox = await deps.openOutbox();
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
    // One websocket to every server (in the order the credentials name them: that is the id's index).
    sockets: options.serverRequests?.connect(clients.map((client) => client.socketTarget())),
    onPrimaryResult: (ok) => options.onCvResult?.(primary.origin, ok),
    keyPair,
    loginUsersRoute,
    warn: options.warn ?? options.log,
  });
}

/** The key pair of the primary's credentials, else the configured one; checked (a KeyPairError if broken). */
async function pickKeyPair(primary: ServerCredentials, options: LiveOptions): Promise<LoginKeyPair | null> {
  const { publicKey, privateKey } = primary;
  if (publicKey !== undefined || privateKey !== undefined) {
    if (publicKey === undefined || privateKey === undefined) {
      throw new KeyPairError("public_key and private_key must be given together (the login-users key pair)");
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
