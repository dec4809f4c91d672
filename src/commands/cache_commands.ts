import { z } from "zod";
import { type Answer, OK_ANSWER, okAnswer } from "../protocol/answers.ts";
import type { CachedReferences } from "../cache/cached_references.ts";
import type { Session } from "../session/session.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

const OK_TRUE: Answer = okAnswer(true);
const OK_FALSE: Answer = okAnswer(false);

/** A reference number: any non-empty string. */
export const referenceNumberSchema = z.string({ error: "must be a non-empty string (the reference number)" })
  .min(1, { error: "must be a non-empty string (the reference number), got an empty string" });

/**
 * True for content {@link referenceNumberSchema} passes unchanged (a non-empty string), without running it:
 * the quick test of every cache line.
 */
export function isReferenceNumber(content: unknown): content is string {
  return typeof content === "string" && content.length > 0;
}

/** The reference-cache commands; they work at any time, before or after credentials. */
export function cacheCommands(session: Session): Record<string, CommandDefinition> {
  // Each handler reaches the cache without waiting when it is open, so pipelined commands touch it in
  // input order (a write is then seen by every later lookup, which waits for its commit).
  // No async functions: these run for every line of a pipelining scraper, and each async step costs a
  // promise and a turn. A lookup the cache answers at once is answered at once; pipelined sets that share
  // a commit share one answer promise.
  const answerOk = () => OK_ANSWER;
  const lookUp = (reference: string): Answer | Promise<Answer> => {
    const cache = session.cacheForCommands();
    if (cache instanceof Promise) return cache.then((opened) => opened.lookUp(reference, OK_TRUE, OK_FALSE));
    return cache.lookUp(reference, OK_TRUE, OK_FALSE);
  };
  const has = defineCommand(referenceNumberSchema, (reference) =>
    // A CV with this number still being sent decides the answer: wait for it.
    session.isSending(reference)
      ? session.sendSettled(reference).then(() => lookUp(reference))
      : lookUp(reference));
  let lastCommit: Promise<void> | null = null;
  let lastAnswer: Promise<Answer> = Promise.resolve(OK_ANSWER);
  const okOnceCommitted = (commit: Promise<void>): Promise<Answer> => {
    if (commit !== lastCommit) {
      lastCommit = commit;
      lastAnswer = commit.then(answerOk);
    }
    return lastAnswer;
  };
  const set = (write: (cache: CachedReferences, reference: string) => Promise<void>) =>
    defineCommand(referenceNumberSchema, (reference) => {
      const cache = session.cacheForCommands();
      return cache instanceof Promise
        ? cache.then((opened) => write(opened, reference)).then(answerOk)
        : okOnceCommitted(write(cache, reference));
    }, isReferenceNumber);
  return {
    set_cached_reference: set((cache, reference) => cache.setLong(reference)),
    set_short_cached_reference: set((cache, reference) => cache.setShort(reference)),
    has_cached_reference: has,
    get_cached_reference: has,
  };
}
