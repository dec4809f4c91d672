/** One line read from the scraper: its text, or why it could not be read. */
export type InputLine =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "too_long"; readonly bytes: number }
  | { readonly kind: "invalid_utf8"; readonly lossyText: string };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Splits a byte stream into lines (`\n` or `\r\n`), never holding more than `maxLineBytes` of one line.
 *
 * A line longer than the limit becomes one `too_long` item; its remaining bytes are skipped as they
 * arrive, and the next line is served normally. A line that is not valid UTF-8 becomes an
 * `invalid_utf8` item. Call {@link push} for every chunk and {@link end} once at end of input.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineSplitter } from "./line_splitter.ts";
 * const splitter = new LineSplitter(1024);
 * const lines = splitter.push(new TextEncoder().encode('{"type":"ping"}\r\n{"ty'));
 * assert.deepEqual(lines, [{ kind: "text", text: '{"type":"ping"}' }]); // the partial line waits for more bytes
 * assert.deepEqual(splitter.end(), [{ kind: "text", text: '{"ty' }]);
 * ```
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  #skippingBytes = -1; // >= 0 while skipping the rest of an over-long line: bytes seen of it so far

  /** Creates a splitter that refuses lines longer than `maxLineBytes` bytes (without the line end). */
  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Feeds one chunk; returns the lines it completed, in order. The chunk may be reused afterwards. */
  push(chunk: Uint8Array): InputLine[] {
    const lines: InputLine[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.#keepPartial(chunk.subarray(start));
        break;
      }
      this.#finishLine(chunk.subarray(start, newline), lines);
      start = newline + 1;
    }
    return lines;
  }

  /** Ends the input: a last line without `\n` is returned like any other. */
  end(): InputLine[] {
    const lines: InputLine[] = [];
    if (this.#skippingBytes >= 0 || this.#partialBytes > 0) this.#finishLine(new Uint8Array(0), lines);
    return lines;
  }

  #keepPartial(piece: Uint8Array): void {
    if (this.#skippingBytes >= 0) {
      this.#skippingBytes += piece.length;
      return;
    }
    if (this.#partialBytes + piece.length > this.#maxLineBytes + 1) {
      // +1 leaves room for a `\r` that a following `\n` would strip.
      this.#skippingBytes = this.#partialBytes + piece.length;
      this.#partial = [];
      this.#partialBytes = 0;
      return;
    }
    this.#partial.push(piece.slice());
    this.#partialBytes += piece.length;
  }

  #finishLine(tail: Uint8Array, lines: InputLine[]): void {
    if (this.#skippingBytes >= 0) {
      lines.push({ kind: "too_long", bytes: this.#skippingBytes + tail.length });
      this.#skippingBytes = -1;
      return;
    }
    let bytes = tail;
    if (this.#partialBytes > 0) {
      bytes = new Uint8Array(this.#partialBytes + tail.length);
      let offset = 0;
      for (const piece of this.#partial) {
        bytes.set(piece, offset);
        offset += piece.length;
      }
      bytes.set(tail, offset);
      this.#partial = [];
      this.#partialBytes = 0;
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN) bytes = bytes.subarray(0, -1);
    if (bytes.length > this.#maxLineBytes) {
      lines.push({ kind: "too_long", bytes: bytes.length });
      return;
    }
    lines.push(this.#decode(bytes));
  }

  #decode(bytes: Uint8Array): InputLine {
    try {
      return { kind: "text", text: this.#decoder.decode(bytes) };
    } catch {
      return { kind: "invalid_utf8", lossyText: new TextDecoder().decode(bytes) };
    }
  }
}
