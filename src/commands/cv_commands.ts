import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { Cv } from "../session/backend.ts";
import type { Session } from "../session/session.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

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

/** What became of one CV: whether it was sent (false: its reference number was cached) and matched. */
export interface SendOutcome {
  readonly sent: boolean;
  readonly matched: boolean;
}

/**
 * `send_cv`: a cached reference number answers `false` and sends nothing; otherwise the backend sends
 * the CV, and a match is cached for 72 hours. `send_cv_outcome` does the same and answers
 * `{sent, matched}` (the wrapper's `/send_cv` answers `sent`, as the Go client v2 did).
 */
export function cvCommands(session: Session): Record<string, CommandDefinition> {
  const send = async (cv: Cv): Promise<SendOutcome> => {
    const backend = session.backend;
    if (await backend.references.has(cv.referenceNumber)) return { sent: false, matched: false };
    const matched = await backend.sendCv(cv);
    if (matched) await backend.references.setLong(cv.referenceNumber);
    return { sent: true, matched };
  };
  const sendOnce = (cv: Cv) => session.sendOnce(cv.referenceNumber, () => send(cv));
  return {
    send_cv: defineCommand(cvSchema, async (cv) => okAnswer((await sendOnce(cv)).matched)),
    send_cv_outcome: defineCommand(cvSchema, async (cv) => okAnswer(await sendOnce(cv))),
  };
}
