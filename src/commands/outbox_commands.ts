/**
 * `outbox_status` and `dead_letters`: what waits in the outbox and what was refused for good, per server
 * and ingest stream (PROTOCOL.md section 11). Both work at any time, also before credentials are set.
 *
 * @module
 */

import { z } from "zod";
import type { Clock } from "../clock.ts";
import type { Outbox } from "../outbox/outbox.ts";
import { readDeadLetters, readOutboxStatus } from "../outbox/outbox_status.ts";
import { okAnswer } from "../protocol/answers.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineBareCommand, defineCommand } from "./registry.ts";

/** `dead_letters` content: none, or `{limit}` (default 100). */
export const deadLettersSchema = z.object({
  limit: z.number({ error: "must be a number of dead letters" }).int({ error: "must be a whole number" })
    .min(1, { error: "must be 1 or more" }).max(10_000, { error: "must be at most 10000" }).optional(),
}, { error: "must be an object {limit?} or absent" }).nullish();

/** The outbox commands over the client's one outbox. */
export function outboxCommands(
  outbox: () => Promise<Outbox>,
  clock: Clock,
): Record<string, CommandDefinition> {
  const open = async () => {
    try {
      return (await outbox()).store;
    } catch (error) {
      throw new CommandError(
        `cannot open the store: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  return {
    outbox_status: defineBareCommand(async () => okAnswer(await readOutboxStatus(await open(), clock.now()))),
    dead_letters: defineCommand(deadLettersSchema, async (content) => {
      return okAnswer(await readDeadLetters(await open(), content?.limit ?? 100));
    }),
  };
}
