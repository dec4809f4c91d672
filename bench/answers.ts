/**
 * Building pipelined input and checking the answers byte by byte, without decoding or parsing them.
 *
 * @module
 */

import type { LineConsumer } from "./client_process.ts";

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The answer lines the cache scenarios expect, by code. */
export const OK = 0;
/** `{"type":"ok","content":true}` */
export const TRUE = 1;
/** `{"type":"ok","content":false}` */
export const FALSE = 2;
/** `{"type":"pong"}` */
export const PONG = 3;

const TEMPLATES = [
  '{"type":"ok"}\n',
  '{"type":"ok","content":true}\n',
  '{"type":"ok","content":false}\n',
  '{"type":"pong"}\n',
].map((line) => encoder.encode(line));

/** How many wrong answers are described in the report. */
const MAX_DESCRIBED = 3;
const MAX_SHOWN_BYTES = 200;

/**
 * Checks a stream of answer lines against expected codes ({@linkcode OK}, {@linkcode TRUE}, ...), one line per
 * code, comparing each byte with the expected line as it arrives; a line split across chunks is fine.
 * Done after the last expected line; it then leaves any further bytes unread.
 */
export class ExpectedAnswers implements LineConsumer {
  readonly #expected: Uint8Array;
  #line = 0;
  #position = 0;
  #wrong = false;
  #wrongBytes: number[] = [];
  #mismatches = 0;
  readonly #described: string[] = [];

  /** `expected[i]` is the code of the answer to input line i. */
  constructor(expected: Uint8Array) {
    this.#expected = expected;
  }

  /** Answer lines read so far. */
  get lines(): number {
    return this.#line;
  }

  /** How many answers differed from the expected line. */
  get mismatches(): number {
    return this.#mismatches;
  }

  /** A few of the wrong answers, as `line <n>: expected <x>, got <y>`. */
  get described(): readonly string[] {
    return this.#described;
  }

  /** `all N answers as expected` or the count and first few wrong ones. */
  summary(): string {
    if (this.#mismatches === 0) return `all ${this.#line} answers as expected`;
    return `${this.#mismatches} of ${this.#line} answers wrong, e.g. ${this.#described.join(" | ")}`;
  }

  feed(chunk: Uint8Array, start: number): number {
    const expected = this.#expected;
    const total = expected.length;
    if (this.#line >= total) return start;
    let template = TEMPLATES[expected[this.#line]];
    for (let index = start; index < chunk.length; index++) {
      const byte = chunk[index];
      if (!this.#wrong && template[this.#position] === byte) {
        this.#position++;
        if (byte !== NEWLINE) continue;
      } else if (!this.#wrong) {
        this.#wrong = true;
        this.#wrongBytes = Array.from(template.subarray(0, this.#position));
        this.#wrongBytes.push(byte);
        if (byte !== NEWLINE) continue;
      } else {
        if (this.#wrongBytes.length < MAX_SHOWN_BYTES) this.#wrongBytes.push(byte);
        if (byte !== NEWLINE) continue;
      }
      // End of a line.
      if (this.#wrong) this.#recordWrong(template);
      this.#line++;
      this.#position = 0;
      if (this.#line === total) return index + 1;
      template = TEMPLATES[expected[this.#line]];
    }
    return -1;
  }

  #recordWrong(template: Uint8Array): void {
    this.#mismatches++;
    if (this.#described.length < MAX_DESCRIBED) {
      const got = decoder.decode(Uint8Array.from(this.#wrongBytes)).trimEnd();
      const want = decoder.decode(template).trimEnd();
      this.#described.push(`line ${this.#line + 1}: expected ${want}, got ${got}`);
    }
    this.#wrong = false;
    this.#wrongBytes = [];
  }
}

/** Counts answer lines without checking them; done after `count`. */
export class LineCounter implements LineConsumer {
  #remaining: number;
  /** Done after `count` lines. */
  constructor(count: number) {
    this.#remaining = count;
  }
  feed(chunk: Uint8Array, start: number): number {
    let index = start;
    while (this.#remaining > 0) {
      const newline = chunk.indexOf(NEWLINE, index);
      if (newline === -1) return -1;
      this.#remaining--;
      index = newline + 1;
    }
    return index;
  }
}

/** Collects `count` answer lines as text (for the few scenarios with answers worth parsing). */
export class LineCollector implements LineConsumer {
  readonly lines: string[] = [];
  readonly #count: number;
  #partial: Uint8Array[] = [];
  /** Done after `count` lines. */
  constructor(count: number) {
    this.#count = count;
  }
  feed(chunk: Uint8Array, start: number): number {
    let index = start;
    while (this.lines.length < this.#count) {
      const newline = chunk.indexOf(NEWLINE, index);
      if (newline === -1) {
        this.#partial.push(chunk.slice(index));
        return -1;
      }
      this.#partial.push(chunk.subarray(index, newline));
      const total = this.#partial.reduce((sum, part) => sum + part.length, 0);
      const bytes = new Uint8Array(total);
      let offset = 0;
      for (const part of this.#partial) {
        bytes.set(part, offset);
        offset += part.length;
      }
      this.lines.push(decoder.decode(bytes));
      this.#partial = [];
      index = newline + 1;
    }
    return index;
  }
}

/** One input line `{"type":"<type>","content":"<reference>"}\n` (references here need no escaping). */
export function referenceLine(type: string, reference: string): string {
  return `{"type":"${type}","content":"${reference}"}\n`;
}

/** Encodes many lines into one buffer for pipelining. */
export function encodeLines(lines: readonly string[]): Uint8Array {
  return encoder.encode(lines.join(""));
}

/** Fisher–Yates shuffle in place, with `Math.random`. */
export function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
