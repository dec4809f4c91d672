import type { z } from "zod";
import { type Answer, errorAnswer } from "../protocol/answers.ts";
import { isBadLine, type ParsedLine } from "../protocol/command_line.ts";
import { ClientError } from "../errors.ts";
import { describeIssues } from "./validation.ts";

/**
 * One command: how its `content` is checked, and what it does with the checked content. Build it with
 * {@link defineCommand}, which ties the handler's parameter type to the schema's output.
 */
export interface CommandDefinition {
  /** Validates `content`; `null` when the command takes none (its content is ignored). */
  readonly schema: z.ZodType | null;
  /**
   * A quick test for the most common valid content, which the schema would pass unchanged (e.g. a
   * non-empty string): content it accepts skips the schema. Anything else goes through the schema.
   */
  readonly accepts?: (content: unknown) => boolean;
  /**
   * Does the command. A {@link ClientError} it throws (a service's typed error, or a `CommandError`) is
   * answered with its message; any other error is a bug, answered as "failed unexpectedly" and reported.
   */
  readonly handle: (content: never) => Answer | Promise<Answer>;
  /**
   * True for commands that change the session (credentials, mock mode): commands after one wait until
   * it is done, so they see the new session. Other commands run as soon as they arrive.
   */
  readonly exclusive?: boolean;
}

/** Something that is told about every answered command (metrics, the debug log). */
export type CommandObserver = (type: string, answer: Answer, error?: unknown) => void;

/**
 * Builds a {@link CommandDefinition} with its content type inferred from the schema; `accepts` is the
 * optional quick test of {@link CommandDefinition.accepts}.
 */
export function defineCommand<Schema extends z.ZodType>(
  schema: Schema,
  handle: (content: z.output<Schema>) => Answer | Promise<Answer>,
  accepts?: (content: unknown) => content is z.output<Schema>,
): CommandDefinition {
  return accepts === undefined ? { schema, handle } : { schema, handle, accepts };
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
  /** Types registered with {@link registerLazy} and not loaded yet: how to load them, and which are exclusive. */
  readonly #lazy = new Map<string, { load: () => Promise<void>; exclusive: boolean }>();
  readonly #observers: CommandObserver[] = [];
  readonly #onUnexpected: (type: string, error: unknown) => void;
  #barrier: Promise<void> | null = null;
  /** The command the last line's type named (pipelined lines mostly repeat it); cleared on registration. */
  #lastType = "";
  #lastCommand: CommandDefinition | null = null;
  /**
   * The last handler promise answered, while it is unsettled: pipelined lines whose handlers return the
   * same promise (sets sharing a commit) share one answer promise, and the observers are told once per line.
   */
  #shared: { type: string; from: Promise<Answer>; lines: number; answer: Promise<Answer> } | null = null;

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
    this.#lastCommand = null;
    return this;
  }

  /**
   * Registers command types whose definitions are loaded on first use, so what the first lines do not
   * need stays unloaded: `load` must register them (e.g. with {@link registerAll}); it runs once. List the
   * exclusive ones in `exclusiveTypes`: later lines must wait for them before they are loaded.
   */
  registerLazy(
    types: readonly string[],
    load: () => Promise<void>,
    exclusiveTypes: readonly string[] = [],
  ): this {
    let loading: Promise<void> | null = null;
    const loadOnce = () => {
      loading ??= load().then(() => {
        for (const type of types) this.#lazy.delete(type);
      });
      return loading;
    };
    for (const type of types) {
      this.#lazy.set(type, { load: loadOnce, exclusive: exclusiveTypes.includes(type) });
    }
    this.#lastCommand = null;
    return this;
  }

  /** The command types known, sorted (for messages and `--help`). */
  get types(): string[] {
    return [...new Set([...this.#commands.keys(), ...this.#lazy.keys()])].sort();
  }

  /** Adds an observer told about every answer. */
  observe(observer: CommandObserver): void {
    this.#observers.push(observer);
  }

  /**
   * Answers one parsed line (see `src/protocol/command_line.ts`); never throws, and the promise (if any)
   * never rejects.
   */
  dispatch(parsed: ParsedLine): Answer | Promise<Answer> {
    if (isBadLine(parsed)) return this.#finish("(line)", errorAnswer(parsed.problem));
    let command = this.#lastCommand;
    if (command === null || parsed.type !== this.#lastType) {
      const lazy = this.#lazy.get(parsed.type);
      if (lazy !== undefined) return this.#dispatchLazy(parsed.type, parsed.content, lazy);
      command = this.#commands.get(parsed.type) ?? null;
      if (command === null) {
        const shown = JSON.stringify(parsed.type.slice(0, MAX_TYPE_IN_MESSAGE));
        return this.#finish(
          "(unknown)",
          errorAnswer(`unknown command type ${shown}; known types: ${this.types.join(", ")}`),
        );
      }
      this.#lastType = parsed.type;
      this.#lastCommand = command;
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

  /** Loads a lazily registered command, then runs it (after the barrier, like any command). */
  #dispatchLazy(
    type: string,
    content: unknown,
    lazy: { load: () => Promise<void>; exclusive: boolean },
  ): Promise<Answer> {
    const answer = Promise.all([this.#barrier, lazy.load()]).then(() => {
      const command = this.#commands.get(type);
      if (command === undefined) throw new Error(`loading the ${type} command did not register it`);
      return this.#run(type, command, content);
    }).catch((error) => this.#fail(type, error));
    if (lazy.exclusive) {
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
    try {
      let input = content;
      if (command.schema !== null && !command.accepts?.(content)) {
        const result = command.schema.safeParse(content);
        if (!result.success) {
          return this.#finish(type, errorAnswer(`${type}: ${describeIssues(result.error.issues, content)}`));
        }
        input = result.data;
      }
      const answer = command.handle(input as never);
      if (!(answer instanceof Promise)) return this.#finish(type, answer);
      const shared = this.#shared;
      if (shared !== null && shared.from === answer && shared.type === type) {
        shared.lines++;
        return shared.answer;
      }
      const share = { type, from: answer, lines: 1, answer: answer as Promise<Answer> };
      const settled = () => {
        if (this.#shared === share) this.#shared = null;
        return share.lines;
      };
      share.answer = answer.then(
        (value) => this.#finish(type, value, undefined, settled()),
        (error) => this.#fail(type, error, settled()),
      );
      this.#shared = share;
      return share.answer;
    } catch (error) {
      return this.#fail(type, error);
    }
  }

  /**
   * The one place that turns a thrown error into an answer: a {@link ClientError} (a reason the scraper
   * author can act on) is answered with its message; anything else is a bug, reported to `onUnexpected`.
   * `lines` lines share the answer.
   */
  #fail(type: string, error: unknown, lines = 1): Answer {
    if (error instanceof ClientError) {
      return this.#finish(type, errorAnswer(`${type}: ${error.message}`), error, lines);
    }
    this.#report(type, error);
    const reason = error instanceof Error ? error.message : String(error);
    return this.#finish(type, errorAnswer(`${type}: failed unexpectedly: ${reason}`), error, lines);
  }

  /**
   * Tells the observers, once for each of the `lines` lines answered with `answer`; one that throws is a
   * bug: it is reported, and the line is answered with an error (the other observers are still told), so
   * no failure can stop the answers.
   */
  #finish(type: string, answer: Answer, error?: unknown, lines = 1): Answer {
    let final = answer;
    for (const observer of this.#observers) {
      try {
        for (let line = 0; line < lines; line++) observer(type, final, error);
      } catch (failure) {
        this.#report(type, failure);
        const reason = failure instanceof Error ? failure.message : String(failure);
        final = errorAnswer(`${type}: failed unexpectedly: ${reason}`);
      }
    }
    return final;
  }

  #report(type: string, error: unknown): void {
    try {
      this.#onUnexpected(type, error);
    } catch {
      // Reporting a bug must not become a second one.
    }
  }
}
