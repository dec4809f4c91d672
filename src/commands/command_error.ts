import { ClientError } from "../errors.ts";

/**
 * A command's own input or result is wrong, for a reason the scraper author can act on (a handler's check
 * beyond the schema). Services throw their own {@link ClientError} subclasses instead; the registry answers
 * both alike: `{"type":"error","content":"<command>: <message>"}`.
 */
export class CommandError extends ClientError {
  override name = "CommandError";
}
