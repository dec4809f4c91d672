import { z } from "zod";
import { okAnswer } from "../protocol/answers.ts";
import type { CvDocument } from "../session/backend.ts";
import type { Session } from "../session/session.ts";
import { CommandError } from "./command_error.ts";
import { cvSchema, type SendOutcome } from "./cv_commands.ts";
import { type CommandDefinition, defineCommand } from "./registry.ts";

/** The content type of a document when the scraper names none. */
export const DEFAULT_DOCUMENT_TYPE = "application/pdf";

const documentSchema = z.object({
  cv: cvSchema,
  file: z.string({ error: "must be the path of the document (a string)" }).min(1, {
    error: "must be the path of the document, got an empty string",
  }).optional(),
  file_base64: z.string({ error: "must be the document in base64 (a string)" }).optional(),
  content_type: z.string({ error: 'must be a content type like "application/pdf"' }).regex(
    /^[\w.+-]+\/[\w.+-]+/,
    {
      error: 'must be a content type like "application/pdf"',
    },
  ).optional(),
}, { error: 'must be an object like {"cv":{...},"file":"<path>"} or {"cv":{...},"file_base64":"..."}' })
  .superRefine((content, context) => {
    if ((content.file === undefined) === (content.file_base64 === undefined)) {
      context.addIssue({
        code: "custom",
        path: [],
        message: "must name the document once: either file (a path) or file_base64",
      });
    }
  });

/** What the document commands need. */
export interface DocumentCommandDeps {
  readonly session: Session;
  /** The largest document accepted, in bytes (the line limit, `RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES`). */
  readonly maxBytes: number;
  /** Reads a file; default `Deno.readFile`. */
  readonly readFile?: (path: string) => Promise<Uint8Array<ArrayBuffer>>;
}

/**
 * `send_cv_document` (answers the primary's `hasMatches`) and `send_cv_document_outcome` (answers
 * `{sent, matched}`; the wrapper's `/send_full_cv` answers `sent`). A cached reference number answers
 * `false` and sends nothing; a match is cached for 72 hours, like `send_cv`.
 */
export function documentCommands(deps: DocumentCommandDeps): Record<string, CommandDefinition> {
  const { session, maxBytes } = deps;
  const readFile = deps.readFile ?? ((path: string) => Deno.readFile(path));

  const load = async (content: z.output<typeof documentSchema>): Promise<Uint8Array<ArrayBuffer>> => {
    if (content.file_base64 !== undefined) {
      if (content.file_base64.trim() === "") {
        throw new CommandError("content.file_base64 is empty; send the document's bytes");
      }
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        bytes = Uint8Array.fromBase64(content.file_base64);
      } catch {
        throw new CommandError("content.file_base64 is not valid base64");
      }
      if (bytes.length > maxBytes) {
        throw new CommandError(
          `content.file_base64 holds ${bytes.length} bytes, more than the limit of ${maxBytes} (RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES)`,
        );
      }
      return bytes;
    }
    const path = content.file!;
    const shown = JSON.stringify(path.length > 200 ? path.slice(0, 200) + "..." : path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      throw new CommandError(`cannot read the document ${shown}: ${describeFileError(error)}`);
    }
    if (!info.isFile) throw new CommandError(`cannot read the document ${shown}: it is not a file`);
    if (info.size > maxBytes) {
      throw new CommandError(
        `the document ${shown} has ${info.size} bytes, more than the limit of ${maxBytes} (RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES)`,
      );
    }
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new CommandError(`cannot read the document ${shown}: ${describeFileError(error)}`);
    }
    if (bytes.length === 0) throw new CommandError(`the document ${shown} is empty`);
    if (bytes.length > maxBytes) {
      throw new CommandError(
        `the document ${shown} grew past the limit of ${maxBytes} bytes while it was read`,
      );
    }
    return bytes;
  };

  const send = (content: z.output<typeof documentSchema>): Promise<SendOutcome> => {
    const reference = content.cv.referenceNumber;
    return session.sendOnce(reference, async () => {
      const backend = session.backend;
      // The cache first: a cached reference number answers false without reading the document.
      if (await backend.references.has(reference)) return { sent: false, matched: false };
      const document: CvDocument = {
        cv: content.cv,
        file: await load(content),
        contentType: content.content_type ?? DEFAULT_DOCUMENT_TYPE,
      };
      return { sent: true, matched: await backend.sendCvDocument(document) }; // a match is cached by it
    });
  };
  return {
    send_cv_document: defineCommand(
      documentSchema,
      async (content) => okAnswer((await send(content)).matched),
    ),
    send_cv_document_outcome: defineCommand(documentSchema, async (content) => okAnswer(await send(content))),
  };
}

function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "it does not exist";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}
