import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import { type LoginUser, NoKeyPairError, NoSecretsRouteError, type RtcvBackend } from "../session/backend.ts";
import type { Session } from "../session/session.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineBareCommand, defineCommand } from "./registry.ts";

const nonEmpty = (what: string) =>
  z.string({ error: `must be a non-empty string (${what})` }).min(1, {
    error: `must be a non-empty string (${what}), got an empty string`,
  });

const secretRequest = (defaultKey?: string) =>
  z.object({
    key: defaultKey === undefined
      ? nonEmpty("the secret's key")
      : nonEmpty("the secret's key").default(defaultKey),
    encryption_key: nonEmpty("the key the secret is encrypted with"),
  }, { error: 'must be an object like {"key":"...","encryption_key":"..."}' });

const userSchema = z.object({ username: z.string(), password: z.string() });
const usersSchema = z.array(userSchema);

/** A login stored as a secret. */
export type UserSecret = z.infer<typeof userSchema>;

/**
 * The secret's value, or, on a primary without the secrets route (the newest RT-CV), its login users: a
 * scraper written for older servers keeps working there.
 */
async function secretOrLoginUsers(
  backend: RtcvBackend,
  key: string,
  encryptionKey: string,
): Promise<{ value: unknown } | { loginUsers: LoginUser[] }> {
  try {
    return { value: await backend.getSecret(key, encryptionKey) };
  } catch (error) {
    if (!(error instanceof NoSecretsRouteError)) throw error;
    try {
      return { loginUsers: await backend.getLoginUsers() };
    } catch (inner) {
      if (inner instanceof NoKeyPairError) throw new CommandError(`${error.message}; ${inner.message}`);
      throw inner;
    }
  }
}

/**
 * The secret commands: `get_secret`, the shape-checked `get_users_secret` and `get_user_secret` (the login
 * users on a server without secrets), and `get_login_users`.
 */
export function secretCommands(session: Session): Record<string, CommandDefinition> {
  return {
    get_secret: defineCommand(secretRequest(), async ({ key, encryption_key }) => {
      return okAnswer(await session.backend.getSecret(key, encryption_key));
    }),
    get_users_secret: defineCommand(secretRequest("users"), async ({ key, encryption_key }) => {
      const backend = session.backend;
      const found = await secretOrLoginUsers(backend, key, encryption_key);
      if ("loginUsers" in found) return okAnswer(found.loginUsers);
      const users = usersSchema.safeParse(found.value);
      if (!users.success) {
        const { source, hint } = backend.describeSecretSource(key);
        throw new CommandError(`${source} must be a list of {"username":"...","password":"..."}; ${hint}`);
      }
      return okAnswer(users.data);
    }),
    get_user_secret: defineCommand(secretRequest("user"), async ({ key, encryption_key }) => {
      const backend = session.backend;
      const found = await secretOrLoginUsers(backend, key, encryption_key);
      if ("loginUsers" in found) {
        if (found.loginUsers.length === 0) {
          throw new CommandError(
            "the primary has no secrets route and no login users are stored for this scraper",
          );
        }
        return okAnswer(found.loginUsers[0]);
      }
      const user = userSchema.safeParse(found.value);
      if (!user.success) {
        const { source, hint } = backend.describeSecretSource(key);
        throw new CommandError(`${source} must be an object {"username":"...","password":"..."}; ${hint}`);
      }
      return okAnswer(user.data);
    }),
    get_login_users: defineBareCommand(async () => okAnswer(await session.backend.getLoginUsers())),
  };
}
