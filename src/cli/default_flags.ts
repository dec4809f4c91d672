import type { Flags } from "./flags.ts";

/**
 * The flags of a command line without arguments: how scrapers start the client. `main.ts` uses these without
 * loading the parser (`node:util` costs ~8 ms of start-up).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_FLAGS } from "./default_flags.ts";
 * import { parseFlags } from "./flags.ts";
 * assert.deepEqual(parseFlags([]), DEFAULT_FLAGS);
 * ```
 */
export const DEFAULT_FLAGS: Readonly<Flags> = Object.freeze({
  help: false,
  version: false,
  replay: null,
  replaySkipCommands: [],
  repeatReplay: 1,
  command: [],
});
