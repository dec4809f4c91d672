import type { ClientCore } from "../client_core.ts";
import { CommandError } from "../commands/command_error.ts";
import type { ServerCredentials } from "../commands/session_commands.ts";
import { RtcvApiClient } from "./api_client.ts";
import { LiveBackend } from "./live_backend.ts";
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
  /** Told about each primary scanCV per server (metrics). */
  readonly onCvResult?: (origin: string, ok: boolean) => void;
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
  const roleOf = (index: number) => index === primaryIndex ? "primary" : "mirror";
  const checks = await Promise.allSettled(clients.map((client) => checkServer(client)));
  const failures = checks.flatMap((check, index) =>
    check.status === "rejected" ? [`${roleOf(index)} ${describe(check.reason)}`] : []
  );
  if (failures.length > 0) throw new CommandError(failures.join("; "));

  const primary = clients[primaryIndex];
  const references = await core.session.persistentCache();
  let recent: string[] | null;
  try {
    recent = await primary.scannedReferenceNrs(WARM_UP_DAYS);
  } catch (error) {
    throw new CommandError(`cache warm-up failed: primary ${describe(error)}`);
  }
  if (recent === null) {
    options.log(`warm-up skipped: primary ${primary.origin} has no scannedReferenceNrs route (404)`);
  } else {
    await references.setManyLong(recent);
    options.log(`warm-up: cached ${recent.length} reference numbers from primary ${primary.origin}`);
  }

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
  });
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
