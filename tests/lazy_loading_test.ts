/**
 * What the ready line does not need loads on first use: the registry's lazy command groups (the ingest
 * sink registers its commands that way) and the list the program registers them under.
 */
import assert from "node:assert/strict";
import { INGEST_COMMAND_TYPES } from "../src/app.ts";
import { LAZY_COMMAND_TYPES } from "../src/client_core.ts";
import { cacheCommands } from "../src/commands/cache_commands.ts";
import { cvCommands } from "../src/commands/cv_commands.ts";
import { secretCommands } from "../src/commands/secret_commands.ts";
import { outboxCommands } from "../src/commands/outbox_commands.ts";
import type { Outbox } from "../src/outbox/outbox.ts";
import { sessionCommands } from "../src/commands/session_commands.ts";
import type { Session } from "../src/session/session.ts";
import { CommandRegistry, defineBareCommand, exclusive } from "../src/commands/registry.ts";
import { ingestCommands } from "../src/ingest/ingest_commands.ts";
import type { IngestService } from "../src/ingest/ingest_service.ts";
import { okAnswer } from "../src/protocol/answers.ts";
import { readCommandLine } from "../src/protocol/command_line.ts";

const line = (text: string) => readCommandLine({ kind: "text", text });

Deno.test("the lazily registered ingest commands are exactly the sink's commands", () => {
  const real = Object.keys(ingestCommands({} as IngestService)).sort();
  assert.deepEqual([...INGEST_COMMAND_TYPES].sort(), real);
});

Deno.test("the core's lazily registered commands are exactly its command groups' commands", () => {
  const session = {} as Session;
  const groups = {
    ...sessionCommands({ session, connectLive: () => Promise.reject(), createMock: () => Promise.reject() }),
    ...cacheCommands(session),
    ...cvCommands(session),
    ...secretCommands(session),
    ...outboxCommands(() => Promise.resolve({} as Outbox), { now: () => 0 }),
  };
  assert.deepEqual([...LAZY_COMMAND_TYPES].sort(), Object.keys(groups).sort());
});

Deno.test("a lazy command group loads once, on first use; an exclusive one holds the lines after it", async () => {
  const registry = new CommandRegistry();
  const order: string[] = [];
  let loads = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  registry.registerAll({
    ping: defineBareCommand(() => {
      order.push("ping");
      return { type: "pong" };
    }),
  });
  registry.registerLazy(["slow_set", "later"], async () => {
    loads++;
    await gate;
    registry.registerAll({
      slow_set: exclusive(defineBareCommand(() => {
        order.push("slow_set");
        return okAnswer();
      })),
      later: defineBareCommand(() => okAnswer(2)),
    });
  }, ["slow_set"]);
  assert.ok(registry.types.includes("slow_set"), "known before it is loaded");
  const first = registry.dispatch(line('{"type":"slow_set"}'));
  const after = registry.dispatch(line('{"type":"ping"}'));
  const again = registry.dispatch(line('{"type":"later"}'));
  assert.deepEqual(order, [], "the ping waits for the exclusive command before it");
  release();
  assert.deepEqual(await Promise.all([first, after, again]), [okAnswer(), { type: "pong" }, okAnswer(2)]);
  assert.deepEqual(order, ["slow_set", "ping"]);
  assert.equal(loads, 1);
});

Deno.test("a lazy group that fails to load answers an error for its line, and the others keep flowing", async () => {
  const reported: string[] = [];
  const registry = new CommandRegistry((type) => reported.push(type));
  registry.registerAll({ ping: defineBareCommand(() => ({ type: "pong" })) });
  registry.registerLazy(["broken"], () => Promise.reject(new Error("module missing")));
  const answers = await Promise.all([
    registry.dispatch(line('{"type":"broken"}')),
    registry.dispatch(line('{"type":"ping"}')),
  ]);
  assert.deepEqual(answers, [
    { type: "error", content: "broken: failed unexpectedly: module missing" },
    { type: "pong" },
  ]);
  assert.deepEqual(reported, ["broken"]);
});
