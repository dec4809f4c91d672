import type { Answer } from "./answers.ts";
import type { AnswerWriter } from "./answer_writer.ts";
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
  /** Answers one line (the command registry's dispatch). */
  readonly answer: (line: InputLine) => Answer | Promise<Answer>;
  /** Told about every line before it is answered (the input log). */
  readonly onLine?: (line: InputLine) => void;
  /** When it aborts, no more input is read; what is in flight is still answered. */
  readonly stop?: AbortSignal;
  /** Told when reading the input fails; serving then ends as at end of input. */
  readonly onReadError?: (error: unknown) => void;
}

const READ_BUFFER_BYTES = 64 * 1024;
/**
 * Reading pauses while this many answers wait (until half of them are written): it bounds memory under a
 * flood of pipelined lines, while leaving room for three full 1000-mutation commits in flight.
 */
const MAX_PENDING_ANSWERS = 5_000;

/**
 * Reads lines from `source` until end of input (or `stop`), answers each through `writer` in order, and
 * resolves once every answer is written. The answers of one read are written before the next read is
 * waited on, so a lockstep scraper is answered at once and a pipelining one in batches.
 */
export async function serveLines(
  source: ByteSource,
  writer: AnswerWriter,
  options: ServeLinesOptions,
): Promise<void> {
  const splitter = new LineSplitter(options.maxLineBytes);
  const buffer = new Uint8Array(READ_BUFFER_BYTES);
  const maxPending = MAX_PENDING_ANSWERS;
  const stopped = stopPromise(options.stop);
  const handle = (lines: InputLine[]) => {
    for (const line of lines) {
      options.onLine?.(line);
      writer.push(options.answer(line));
    }
    writer.flush();
  };
  while (!options.stop?.aborted && writer.failure === null) {
    if (writer.pending > maxPending) await Promise.race([writer.room(maxPending / 2), stopped]);
    let count: number | null | "stopped";
    try {
      count = await Promise.race([source.read(buffer), stopped]);
    } catch (error) {
      options.onReadError?.(error); // stdin broke: answer what was read, then end like at end of input
      break;
    }
    if (count === null || count === "stopped") break;
    handle(splitter.push(buffer.subarray(0, count)));
  }
  if (!options.stop?.aborted) handle(splitter.end());
  await writer.idle();
}

function stopPromise(signal?: AbortSignal): Promise<"stopped"> {
  return new Promise((resolve) => {
    if (!signal) return;
    if (signal.aborted) resolve("stopped");
    signal.addEventListener("abort", () => resolve("stopped"), { once: true });
  });
}
