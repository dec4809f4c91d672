import { z } from "zod";
import { type Answer, OK_ANSWER, okAnswer } from "../protocol/answers.ts";

const OK_TRUE: Answer = okAnswer(true);
const OK_FALSE: Answer = okAnswer(false);
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
  // Promise chains, not async functions: these run for every line of a pipelining scraper, and each
  // async step costs a promise and a turn.
  const withCache = <T>(use: (cache: CachedReferences) => Promise<T>): Promise<T> => {
    const cache = session.cacheForCommands();
    return cache instanceof Promise ? cache.then(use) : use(cache);
  };
  const answerHas = (hit: boolean) => hit ? OK_TRUE : OK_FALSE;
  const has = defineCommand(referenceNumberSchema, (reference) => {
    const lookUp = () => withCache((cache) => cache.has(reference)).then(answerHas);
    // A CV with this number still being sent decides the answer: wait for it.
    return session.isSending(reference) ? session.sendSettled(reference).then(lookUp) : lookUp();
  });
  const answerOk = () => OK_ANSWER;
  return {
    set_cached_reference: defineCommand(
      referenceNumberSchema,
      (reference) => withCache((cache) => cache.setLong(reference)).then(answerOk),
    ),
    set_short_cached_reference: defineCommand(
      referenceNumberSchema,
      (reference) => withCache((cache) => cache.setShort(reference)).then(answerOk),
    ),
    has_cached_reference: has,
    get_cached_reference: has,
  };
}
