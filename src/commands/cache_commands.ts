import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { Session } from "../session/session.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

/** A reference number: any non-empty string. */
export const referenceNumberSchema = z.string({ error: "must be a non-empty string (the reference number)" })
  .min(1, { error: "must be a non-empty string (the reference number), got an empty string" });

/** The reference-cache commands; they work at any time, before or after credentials. */
export function cacheCommands(session: Session): Record<string, CommandDefinition> {
  const has = defineCommand(referenceNumberSchema, async (reference) => {
    // A CV with this number still being sent decides the answer: wait for it.
    if (session.isSending(reference)) await session.sendSettled(reference);
    const cache = await session.cacheForCommands();
    return okAnswer(await cache.has(reference));
  });
  return {
    set_cached_reference: defineCommand(referenceNumberSchema, async (reference) => {
      await (await session.cacheForCommands()).setLong(reference);
      return okAnswer();
    }),
    set_short_cached_reference: defineCommand(referenceNumberSchema, async (reference) => {
      await (await session.cacheForCommands()).setShort(reference);
      return okAnswer();
    }),
    has_cached_reference: has,
    get_cached_reference: has,
  };
}
