import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { CachedReferences } from "../cache/cached_references.ts";
import type { Session } from "../session/session.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

/** A reference number: any non-empty string. */
export const referenceNumberSchema = z.string({ error: "must be a non-empty string (the reference number)" })
  .min(1, { error: "must be a non-empty string (the reference number), got an empty string" });

/** The reference-cache commands; they work at any time, before or after credentials. */
export function cacheCommands(session: Session): Record<string, CommandDefinition> {
  // Each handler reaches the cache without waiting when it is open, so pipelined commands touch it in
  // input order (a write is then seen by every later lookup, which waits for its commit).
  const withCache = async <T>(use: (cache: CachedReferences) => Promise<T>): Promise<T> => {
    const cache = session.cacheForCommands();
    return await use(cache instanceof Promise ? await cache : cache);
  };
  const has = defineCommand(referenceNumberSchema, async (reference) => {
    // A CV with this number still being sent decides the answer: wait for it.
    if (session.isSending(reference)) await session.sendSettled(reference);
    return okAnswer(await withCache((cache) => cache.has(reference)));
  });
  return {
    set_cached_reference: defineCommand(referenceNumberSchema, async (reference) => {
      await withCache((cache) => cache.setLong(reference));
      return okAnswer();
    }),
    set_short_cached_reference: defineCommand(referenceNumberSchema, async (reference) => {
      await withCache((cache) => cache.setShort(reference));
      return okAnswer();
    }),
    has_cached_reference: has,
    get_cached_reference: has,
  };
}
