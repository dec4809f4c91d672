import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import { REPLACED, type ServerRequests } from "../rtcv/server_requests.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

/** The longest wait a timer can hold (2^31 - 1 ms). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

const nextSchema = z.object({
  timeout_ms: z.number({ error: "must be a whole number of milliseconds" }).int({
    error: "must be a whole number of milliseconds",
  }).min(0, { error: "must be 0 or more milliseconds" }).max(MAX_TIMEOUT_MS, {
    error: `must be at most ${MAX_TIMEOUT_MS} milliseconds`,
  }).optional(),
  replace: z.boolean({ error: "must be true or false" }).optional(),
  cancel: z.boolean({ error: "must be true or false" }).optional(),
}, { error: 'must be nothing, or an object like {"timeout_ms":30000}' }).nullish();

const responseSchema = z.object({
  id: z.string({ error: "must be the id next_server_request answered (a string)" }).min(1, {
    error: "must be the id next_server_request answered, got an empty string",
  }),
  type: z.unknown().optional(),
  data: z.unknown().optional(),
}, { error: 'must be an object like {"id":"0-1","type":"...","data":...}' });

/**
 * `next_server_request` and `server_response`: requests RT-CV servers send over their websockets, and the
 * scraper's answers. `next_server_request` answers `{type, id, data}`, or null at its `timeout_ms` (or when
 * the client stops); with `replace: true` it ends an earlier waiting call that also said `replace` (that
 * one answers an error): the wrapper's `/server_request` route works that way; `cancel: true` only ends such a
 * wait (the route's caller went away) and answers null.
 */
export function serverRequestCommands(requests: ServerRequests): Record<string, CommandDefinition> {
  return {
    next_server_request: defineCommand(nextSchema, async (content) => {
      const request = await requests.next({
        timeoutMs: content?.timeout_ms,
        replace: content?.replace,
        cancel: content?.cancel,
      });
      if (request === REPLACED) {
        throw new CommandError("a later next_server_request took over this wait");
      }
      return okAnswer(request);
    }),
    // An answer that cannot be sent throws a ServerRequestError, answered with its message.
    server_response: defineCommand(responseSchema, (answer) => {
      requests.respond(answer);
      return okAnswer();
    }),
  };
}
