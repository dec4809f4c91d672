import type { Answer } from "./answers.ts";
import type { AnswerWriter } from "./answer_writer.ts";
import { isBadLine, type ParsedLine, readCommandLine } from "./command_line.ts";
import { type InputLine, LineSplitter } from "./line_splitter.ts";

/** Where input bytes come from: stdin in the program (`Deno.stdin.read` semantics). */
export interface ByteSource {
  /** Reads into `buffer`; resolves with the byte count, or null at end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** How {@link serveLines} reads and whom it tells about each line. */
export interface ServeLinesOptions {
  /** The longest line accepted, in bytes. */
  readonly maxLineBytes: number;
  /**
   * Reading pauses while the lines read and not yet answered hold more than this many bytes
   * (`RTCV_SCRAPER_CLIENT_MAX_PENDING_BYTES`); one longer line is still read, up to `maxLineBytes`.
   */
  readonly maxPendingBytes: number;
  /** Answers one parsed line (the command registry's dispatch). */
  readonly answer: (line: ParsedLine) => Answer | Promise<Answer>;
  /** Told about every line before it is answered (the input log). */
  readonly onLine?: (line: InputLine) => void;
  /** When it aborts, no more input is read; what is in flight is still answered. */
  readonly stop?: AbortSignal;
  /** Told when reading the input fails; serving then ends as at end of input. */
  readonly onReadError?: (error: unknown) => void;
  /** Told when `onLine` or `answer` throws (a bug); that line is answered with an error. */
  readonly onInternalError?: (error: unknown) => void;
}

const READ_BUFFER_BYTES = 64 * 1024;
/**
 * Reading pauses while this many answers wait (until half of them are written): it bounds memory under a
 * flood of pipelined small lines, while leaving room for three full 1000-mutation commits in flight.
 */
const MAX_PENDING_ANSWERS = 5_000;

/**
 * Reads lines from `source` until end of input (or `stop`, or a failed write of the answers), answers each
 * through `writer`, and resolves once every command has finished. The answers of one read are written
 * before the next read is waited on, so a lockstep scraper is answered at once and a pipelining one in
 * batches. Reading pauses while too many answers, or too many bytes of lines, wait.
 */
export async function serveLines(
  source: ByteSource,
  writer: AnswerWriter,
  options: ServeLinesOptions,
): Promise<void> {
  const splitter = new LineSplitter(options.maxLineBytes);
  const buffer = new Uint8Array(READ_BUFFER_BYTES);
  const maxPending = MAX_PENDING_ANSWERS;
  const maxBytes = options.maxPendingBytes;
  // One waiter at a time is woken by a stop or a failed write. (A Promise.race against a promise that
  // never settles would leave one reaction on it per read, for as long as the process runs.)
  let interrupt: ((reason: "stopped" | "failed") => void) | null = null;
  options.stop?.addEventListener("abort", () => interrupt?.("stopped"), { once: true });
  writer.failed().then(() => interrupt?.("failed"));
  const untilInterrupted = <T>(promise: Promise<T>): Promise<T | "stopped" | "failed"> =>
    new Promise<T | "stopped" | "failed">((resolve, reject) => {
      interrupt = resolve;
      promise.then(resolve, reject);
    });
  const internalError = (error: unknown) => {
    try {
      options.onInternalError?.(error);
    } catch {
      // Reporting must not break serving.
    }
  };
  const handle = (lines: InputLine[]) => {
    for (const line of lines) {
      if (options.onLine) {
        try {
          options.onLine(line);
        } catch (error) {
          internalError(error);
        }
      }
      const parsed = readCommandLine(line);
      let answer: Answer | Promise<Answer>;
      try {
        answer = options.answer(parsed);
      } catch (error) {
        answer = Promise.reject(error); // the writer answers it with an error and reports it
      }
      writer.push(answer, isBadLine(parsed) ? undefined : parsed.id, lineBytes(line));
    }
    writer.flush();
  };
  const ended = () => options.stop?.aborted || writer.failure !== null;
  while (!ended()) {
    if (writer.pending > maxPending || writer.pendingBytes > maxBytes) {
      await untilInterrupted(writer.room(maxPending / 2, maxBytes));
      interrupt = null;
      if (ended()) break;
    }
    let count: number | null | "stopped" | "failed";
    try {
      count = await untilInterrupted(source.read(buffer));
      interrupt = null;
    } catch (error) {
      interrupt = null;
      options.onReadError?.(error); // stdin broke: answer what was read, then end like at end of input
      break;
    }
    if (count === null || count === "stopped" || count === "failed") break;
    handle(splitter.push(buffer.subarray(0, count)));
  }
  if (!ended()) handle(splitter.end());
  await writer.idle();
}

/** What a line counts against the bound of pending input: its length (a skipped line holds nothing). */
function lineBytes(line: InputLine): number {
  switch (line.kind) {
    case "text":
      return line.text.length + 1;
    case "invalid_utf8":
      return line.lossyText.length + 1;
    case "too_long":
      return 1;
  }
}
