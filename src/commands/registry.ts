import type { z } from "zod";
import { type Answer, errorAnswer } from "../protocol/answers.ts";
import type { InputLine } from "../protocol/line_splitter.ts";
import { CommandError } from "./command_error.ts";
import { describeIssues, describeValue } from "./validation.ts";

/**
 * One command: how its `content` is checked, and what it does with the checked content. Build it with
 * {@link defineCommand}, which ties the handler's parameter type to the schema's output.
 */
export interface CommandDefinition {
  /** Validates `content`; `null` when the command takes none (its content is ignored). */
  readonly schema: z.ZodType | null;
  /** Does the command; throws a {@link CommandError} (or any error) to answer an error line. */
  readonly handle: (content: never) => Answer | Promise<Answer>;
  /**
   * True for commands that change the session (credentials, mock mode): commands after one wait until
   * it is done, so they see the new session. Other commands run as soon as they arrive.
   */
  readonly exclusive?: boolean;
}

/** Something that is told about every answered command (metrics, the debug log). */
export type CommandObserver = (type: string, answer: Answer, error?: unknown) => void;

/** Builds a {@link CommandDefinition} with its content type inferred from the schema. */
export function defineCommand<Schema extends z.ZodType>(
  schema: Schema,
  handle: (content: z.output<Schema>) => Answer | Promise<Answer>,
): CommandDefinition {
  return { schema, handle };
}

/** Marks a command as one that later commands must wait for (see {@link CommandDefinition.exclusive}). */
export function exclusive(definition: CommandDefinition): CommandDefinition {
  return { ...definition, exclusive: true };
}

/** Builds a {@link CommandDefinition} for a command without content. */
export function defineBareCommand(handle: () => Answer | Promise<Answer>): CommandDefinition {
  return { schema: null, handle };
}

const MAX_TYPE_IN_MESSAGE = 64;

/**
 * Routes input lines to command handlers by their `type`, through a `Map`.
 *
 * This is the one place that turns a bad line, a failed validation or a thrown error into an error
 * answer, so every input line gets exactly one answer and a handler never writes output itself.
 */
export class CommandRegistry {
  readonly #commands = new Map<string, CommandDefinition>();
  readonly #observers: CommandObserver[] = [];
  readonly #onUnexpected: (type: string, error: unknown) => void;
  #barrier: Promise<void> | null = null;

  /** `onUnexpected` hears about errors that are bugs rather than bad input (they go to stderr). */
  constructor(onUnexpected: (type: string, error: unknown) => void = () => {}) {
    this.#onUnexpected = onUnexpected;
  }

  /**
   * Adds every command of a group, e.g. `registry.registerAll(cacheCommands(deps))`; a later registration
   * of the same type replaces the earlier one.
   */
  registerAll(group: Record<string, CommandDefinition>): this {
    for (const [type, definition] of Object.entries(group)) this.#commands.set(type, definition);
    return this;
  }

  /** The command types known, sorted (for messages and `--help`). */
  get types(): string[] {
    return [...this.#commands.keys()].sort();
  }

  /** Adds an observer told about every answer. */
  observe(observer: CommandObserver): void {
    this.#observers.push(observer);
  }

  /** Answers one input line; never throws, and the promise (if any) never rejects. */
  dispatch(line: InputLine): Answer | Promise<Answer> {
    if (line.kind === "too_long") {
      return this.#finish(
        "(line)",
        errorAnswer(
          `input line of ${line.bytes} bytes is longer than the limit of RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES; it was skipped`,
        ),
      );
    }
    if (line.kind === "invalid_utf8") {
      return this.#finish(
        "(line)",
        errorAnswer("input line is not valid UTF-8; send one JSON object per line"),
      );
    }
    const parsed = parseCommandLine(line.text);
    if (typeof parsed === "string") return this.#finish("(line)", errorAnswer(parsed));
    const command = this.#commands.get(parsed.type);
    if (command === undefined) {
      const shown = JSON.stringify(parsed.type.slice(0, MAX_TYPE_IN_MESSAGE));
      return this.#finish(
        "(unknown)",
        errorAnswer(`unknown command type ${shown}; known types: ${this.types.join(", ")}`),
      );
    }
    const barrier = this.#barrier;
    const answer = barrier === null
      ? this.#run(parsed.type, command, parsed.content)
      : barrier.then(() => this.#run(parsed.type, command, parsed.content));
    if (command.exclusive && answer instanceof Promise) {
      const done = answer.then(() => {});
      this.#barrier = done;
      done.then(() => {
        if (this.#barrier === done) this.#barrier = null;
      });
    }
    return answer;
  }

  /** Validates `content` and runs the command named `type`; the answer never rejects. */
  #run(type: string, command: CommandDefinition, content: unknown): Answer | Promise<Answer> {
    let input = content;
    if (command.schema !== null) {
      const result = command.schema.safeParse(content);
      if (!result.success) {
        return this.#finish(type, errorAnswer(`${type}: ${describeIssues(result.error.issues, content)}`));
      }
      input = result.data;
    }
    try {
      const answer = command.handle(input as never);
      if (!(answer instanceof Promise)) return this.#finish(type, answer);
      return answer.then(
        (settled) => this.#finish(type, settled),
        (error) => this.#fail(type, error),
      );
    } catch (error) {
      return this.#fail(type, error);
    }
  }

  #fail(type: string, error: unknown): Answer {
    if (error instanceof CommandError) {
      return this.#finish(type, errorAnswer(`${type}: ${error.message}`), error);
    }
    this.#onUnexpected(type, error);
    const reason = error instanceof Error ? error.message : String(error);
    return this.#finish(type, errorAnswer(`${type}: failed unexpectedly: ${reason}`), error);
  }

  #finish(type: string, answer: Answer, error?: unknown): Answer {
    for (const observer of this.#observers) observer(type, answer, error);
    return answer;
  }
}

/** A line parsed as far as the dispatcher needs: its `type`, and its `content` untouched. */
export interface CommandLine {
  readonly type: string;
  readonly content: unknown;
}

const PING_LINE = '{"type":"ping"}';
/**
 * The shape of most lines under load, `{"type":"<name>","content":"<plain string>"}` (cache commands): read
 * without JSON.parse. Only strings without escapes or quotes match, so the result is what JSON.parse gives.
 */
// deno-lint-ignore no-control-regex -- control characters are what must not match (JSON forbids them raw)
const STRING_COMMAND = /^\{"type":"([a-z_]{1,64})","content":"([^"\\\u0000-\u001f]*)"\}$/;

/** Parses one input line, or returns the error message for it (never quoting the line). */
export function parseCommandLine(text: string): CommandLine | string {
  if (text === PING_LINE) return { type: "ping", content: undefined };
  const simple = STRING_COMMAND.exec(text);
  if (simple !== null) return { type: simple[1], content: simple[2] };
  if (text.trim() === "") {
    return 'input line is empty; expected a JSON object like {"type":"ping"}';
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `input line is not valid JSON (${
      jsonErrorPlace(error, text)
    }); expected one JSON object per line like {"type":"ping"}`;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return `input line must be a JSON object with a "type" field, got ${describeValue(value)}`;
  }
  const type = (value as Record<string, unknown>).type;
  if (typeof type !== "string") {
    return type === undefined
      ? 'input line has no "type" field; expected {"type":"<command>","content":...}'
      : `input line's "type" must be a string, got ${describeValue(type)}`;
  }
  return { type, content: (value as Record<string, unknown>).content };
}

/** Says where JSON.parse failed without repeating the text (V8's messages quote an excerpt). */
function jsonErrorPlace(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : "";
  const position = /position (\d+)/.exec(message);
  if (position) {
    const offset = Number(position[1]);
    if (offset >= text.length) return "the line ends before the JSON value does";
    return `unexpected character at column ${offset + 1} of ${text.length}`;
  }
  if (/end of (JSON )?input|Unterminated/i.test(message)) return "the line ends before the JSON value does";
  if (/Unexpected non-whitespace/i.test(message)) return "extra characters after the JSON value";
  return "unexpected token";
}
