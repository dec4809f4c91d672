import { z } from "zod";
import { OK_ANSWER, okAnswer } from "../protocol/answers.ts";
import type { LoginUser, RtcvBackend } from "../session/backend.ts";
import type { Session } from "../session/session.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineCommand, exclusive } from "./registry.ts";

/** One RT-CV server as the scraper names it, after validation. */
export interface ServerCredentials {
  readonly serverLocation: string;
  readonly apiKeyId: string;
  readonly apiKey: string;
  readonly primary: boolean;
  /** The login-users public key (base64), when the scraper gives the key pair with the credentials. */
  readonly publicKey?: string;
  /** The login-users private key (base64): a secret like `apiKey`. */
  readonly privateKey?: string;
}

const serverSchema = z.object({
  server_location: z.string({ error: "must be a string starting with http:// or https://" })
    .regex(/^https?:\/\/[^\s/]+/i, { error: "must start with http:// or https:// and name a host" }),
  api_key_id: z.string({ error: "must be a non-empty string" }).min(1, {
    error: "must be a non-empty string",
  }),
  api_key: z.string({ error: "must be a non-empty string" }).min(1, { error: "must be a non-empty string" }),
  primary: z.boolean({ error: "must be true or false" }).optional(),
  public_key: z.string({ error: "must be a string (base64 of the 32-byte public key)" }).optional(),
  private_key: z.string({ error: "must be a string (base64 of the 32-byte private key)" }).optional(),
}, { error: "must be an object {server_location, api_key_id, api_key, primary?}" });

/** The servers of a credentials line: one object or a non-empty array; with several, exactly one primary. */
export const credentialsSchema = z.union([
  serverSchema,
  z.array(serverSchema).min(1, { error: "must name at least one server" }),
], { error: "must be a server object {server_location, api_key_id, api_key} or an array of them" })
  .transform((content) => Array.isArray(content) ? content : [content])
  .superRefine((servers, context) => {
    if (servers.length < 2) return;
    const primaries = servers.filter((server) => server.primary === true).length;
    if (primaries !== 1) {
      context.addIssue({
        code: "custom",
        path: [],
        message:
          `must mark exactly one of the ${servers.length} servers with "primary": true (found ${primaries})`,
      });
    }
  })
  .transform((servers): ServerCredentials[] =>
    servers.map((server) => ({
      serverLocation: server.server_location,
      apiKeyId: server.api_key_id,
      apiKey: server.api_key,
      primary: servers.length === 1 || server.primary === true,
      ...(server.public_key === undefined ? {} : { publicKey: server.public_key }),
      ...(server.private_key === undefined ? {} : { privateKey: server.private_key }),
    }))
  );

const mockSchema = z.object({
  secrets: z.record(z.string(), z.unknown(), { error: "must be an object of secret name to value" })
    .optional(),
  login_users: z.array(
    z.object({ username: z.string(), password: z.string() }, {
      error: 'must be an object {"username":"...","password":"..."}',
    }),
    { error: 'must be an array of {"username":"...","password":"..."}' },
  ).optional(),
}, { error: 'must be an object like {"secrets":{"<key>":<value>},"login_users":[...]}, or null' }).nullish()
  .transform((content) => ({ secrets: content?.secrets ?? {}, loginUsers: content?.login_users ?? [] }));

/** What the session commands need: how to reach live servers, and how to build the mock. */
export interface SessionCommandDeps {
  readonly session: Session;
  /** Checks the servers and builds a live backend; throws a CommandError naming the server and step. */
  readonly connectLive: (servers: ServerCredentials[]) => Promise<RtcvBackend>;
  /** Builds a mock backend with these secrets and login users. */
  readonly createMock: (secrets: Record<string, unknown>, loginUsers: LoginUser[]) => Promise<RtcvBackend>;
}

/** `set_credentials`, `set_multiple_credentials` and `set_mock` (`ping` is the core's, loaded with it). */
export function sessionCommands(deps: SessionCommandDeps): Record<string, CommandDefinition> {
  const setCredentials = exclusive(defineCommand(credentialsSchema, async (servers) => {
    // The session changes only once every check passed: a failure leaves the earlier state as it was.
    const backend = await deps.connectLive(servers);
    await deps.session.replaceBackend(backend);
    return OK_ANSWER;
  }));
  return {
    set_credentials: setCredentials,
    set_multiple_credentials: setCredentials,
    set_mock: exclusive(defineCommand(mockSchema, async ({ secrets, loginUsers }) => {
      await deps.session.replaceBackend(await deps.createMock(secrets, loginUsers));
      return okAnswer();
    })),
  };
}

/** Used until live mode is wired: says so instead of pretending. */
export function liveModeUnavailable(): Promise<RtcvBackend> {
  return Promise.reject(new CommandError("live RT-CV servers are not supported by this build"));
}
