import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { Cv } from "../session/backend.ts";
import type { Session } from "../session/session.ts";
import { CommandError } from "./command_error.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";
import { describeIssues } from "./validation.ts";

const REFERENCE_MESSAGE =
  "must be a non-empty string (the CV's reference number; `reference_number` is accepted too)";

/**
 * A CV: any JSON object with a non-empty `referenceNumber` (or its alias `reference_number`).
 * The output is the CV to send, with the alias renamed to RT-CV's `referenceNumber`.
 */
export const cvSchema = z.record(z.string(), z.unknown(), { error: "must be an object (the CV)" })
  .superRefine((cv, context) => {
    const reference = cv.referenceNumber ?? cv.reference_number;
    const field = cv.referenceNumber !== undefined || cv.reference_number === undefined
      ? "referenceNumber"
      : "reference_number";
    if (typeof reference !== "string" || reference === "") {
      context.addIssue({ code: "custom", path: [field], message: REFERENCE_MESSAGE });
    }
  })
  .transform((cv): Cv => {
    if (cv.referenceNumber !== undefined || cv.reference_number === undefined) return cv as Cv;
    const { reference_number: referenceNumber, ...rest } = cv;
    return { ...rest, referenceNumber } as Cv;
  });

/**
 * True for a CV {@link cvSchema} passes with the same content, without running it (a JSON object whose
 * `referenceNumber` is a non-empty string): the quick test of `send_cv` lines.
 */
export function isPlainCv(content: unknown): content is Cv {
  if (typeof content !== "object" || content === null || Array.isArray(content)) return false;
  const reference = (content as Record<string, unknown>).referenceNumber;
  // An own `__proto__` key (JSON.parse makes one) is one the schema's copy drops: leave it to the schema.
  return typeof reference === "string" && reference !== "" && !Object.hasOwn(content, "__proto__");
}

/** What became of one CV: whether it was sent (false: its reference number was cached) and matched. */
export interface SendOutcome {
  readonly sent: boolean;
  readonly matched: boolean;
}

/** `send_cvs_list` content: an array of CVs or `{"cvs": [...]}`; each CV is checked on its own (see below). */
const cvsListSchema = z.union([
  z.array(z.unknown()),
  z.object({ cvs: z.array(z.unknown(), { error: "must be an array of CVs" }) }),
], { error: 'must be an array of CVs or an object {"cvs":[...]}' })
  .transform((content) => Array.isArray(content) ? content : content.cvs);

/** What `send_cvs_list` answers: how many CVs went out, how many duplicates were dropped. */
export interface CvsListResult {
  readonly sent: number;
  readonly duplicates: number;
}

/**
 * Checks every CV of a list like `send_cv` does and drops later copies of a reference number. Throws a
 * {@link CommandError} naming the index of the first bad CV (`cvs[2].referenceNumber ...`).
 */
export function checkCvsList(list: readonly unknown[]): { cvs: Cv[]; duplicates: number } {
  if (list.length === 0) throw new CommandError("cvs must hold at least one CV, got an empty list");
  const cvs: Cv[] = [];
  const seen = new Set<string>();
  let duplicates = 0;
  for (const [index, entry] of list.entries()) {
    const checked = cvSchema.safeParse(entry);
    if (!checked.success) {
      const problem = describeIssues(checked.error.issues, entry).replace(/^content/, `cvs[${index}]`)
        .replaceAll("; content", `; cvs[${index}]`);
      throw new CommandError(`${problem}; nothing was sent`);
    }
    if (seen.has(checked.data.referenceNumber)) {
      duplicates++;
      continue;
    }
    seen.add(checked.data.referenceNumber);
    cvs.push(checked.data);
  }
  return { cvs, duplicates };
}

/**
 * `send_cv`: a cached reference number answers `false` and sends nothing; otherwise the backend sends
 * the CV, and a match is cached for 72 hours. `send_cv_outcome` does the same and answers
 * `{sent, matched}` (the wrapper's `/send_cv` answers `sent`, as the Go client v2 did). `send_cvs_list`: a
 * checked list to `allCVs`.
 */
export function cvCommands(session: Session): Record<string, CommandDefinition> {
  const send = async (cv: Cv): Promise<SendOutcome> => {
    const backend = session.backend;
    if (await backend.references.has(cv.referenceNumber)) return { sent: false, matched: false };
    return { sent: true, matched: await backend.sendCv(cv) }; // a match is cached by the backend
  };
  const sendOnce = (cv: Cv) => session.sendOnce(cv.referenceNumber, () => send(cv));
  return {
    send_cv: defineCommand(cvSchema, async (cv) => okAnswer((await sendOnce(cv)).matched), isPlainCv),
    send_cv_outcome: defineCommand(cvSchema, async (cv) => okAnswer(await sendOnce(cv)), isPlainCv),
    // A list goes out as one allCVs request; it neither reads nor writes the reference cache (the server
    // matches lists against list profiles, not per CV).
    send_cvs_list: defineCommand(cvsListSchema, async (list) => {
      const { cvs, duplicates } = checkCvsList(list);
      await session.backend.sendCvsList(cvs);
      const result: CvsListResult = { sent: cvs.length, duplicates };
      return okAnswer(result);
    }),
  };
}
