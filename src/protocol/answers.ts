/** One protocol answer line, exactly as the Go client wrote them (protocol v1). */
export type Answer =
  | { type: "ok"; content?: unknown }
  | { type: "pong" }
  | { type: "error"; content: string }
  | { type: "ready"; content: string };

/** The first line the client writes, before it reads any input. */
export const READY_ANSWER: Answer = { type: "ready", content: "waiting for credentials" };

/** The answer for a command that succeeded without a value. */
export const OK_ANSWER: Answer = { type: "ok" };

const OK_LINE = '{"type":"ok"}\n';
const OK_TRUE_LINE = '{"type":"ok","content":true}\n';
const OK_FALSE_LINE = '{"type":"ok","content":false}\n';
const PONG_LINE = '{"type":"pong"}\n';

/** Builds an `ok` answer, with `content` when one is given. */
export function okAnswer(content?: unknown): Answer {
  return content === undefined ? OK_ANSWER : { type: "ok", content };
}

/** Builds an `error` answer carrying a message for the scraper author. */
export function errorAnswer(message: string): Answer {
  return { type: "error", content: message };
}

/**
 * Encodes an answer as one compact JSON line ending in `\n`.
 * The common answers are constant strings, so the hot path does no JSON work.
 */
export function encodeAnswer(answer: Answer): string {
  switch (answer.type) {
    case "pong":
      return PONG_LINE;
    case "ok":
      if (answer.content === undefined) return OK_LINE;
      if (answer.content === true) return OK_TRUE_LINE;
      if (answer.content === false) return OK_FALSE_LINE;
      return encodeWithContent(answer);
    default:
      return encodeWithContent(answer);
  }
}

function encodeWithContent(answer: Answer): string {
  try {
    return JSON.stringify(answer) + "\n";
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return JSON.stringify(errorAnswer(`the answer could not be encoded as JSON: ${reason}`)) + "\n";
  }
}
