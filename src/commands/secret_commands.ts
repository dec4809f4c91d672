import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { Session } from "../session/session.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

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

/** The secret commands: `get_secret`, and the shape-checked `get_users_secret` and `get_user_secret`. */
export function secretCommands(session: Session): Record<string, CommandDefinition> {
  return {
    get_secret: defineCommand(secretRequest(), async ({ key, encryption_key }) => {
      return okAnswer(await session.backend.getSecret(key, encryption_key));
    }),
    get_users_secret: defineCommand(secretRequest("users"), async ({ key, encryption_key }) => {
      const backend = session.backend;
      const value = await backend.getSecret(key, encryption_key);
      const users = usersSchema.safeParse(value);
      if (!users.success) {
        const { source, hint } = backend.describeSecretSource(key);
        throw new CommandError(`${source} must be a list of {"username":"...","password":"..."}; ${hint}`);
      }
      return okAnswer(users.data);
    }),
    get_user_secret: defineCommand(secretRequest("user"), async ({ key, encryption_key }) => {
      const backend = session.backend;
      const value = await backend.getSecret(key, encryption_key);
      const user = userSchema.safeParse(value);
      if (!user.success) {
        const { source, hint } = backend.describeSecretSource(key);
        throw new CommandError(`${source} must be an object {"username":"...","password":"..."}; ${hint}`);
      }
      return okAnswer(user.data);
    }),
  };
}
