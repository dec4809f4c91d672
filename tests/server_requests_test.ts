/**
 * The hub of server requests over real websockets (a `Deno.upgradeWebSocket` server on 127.0.0.1): the bound on
 * kept requests, `replace`, and a closed group.
 */
import assert from "node:assert/strict";
import { REPLACED, ServerRequests } from "../src/rtcv/server_requests.ts";

function socketServer() {
  const sockets: WebSocket[] = [];
  const opened = Promise.withResolvers<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      sockets.push(socket);
      opened.resolve(socket);
    };
    return response;
  });
  const port = server.addr.port;
  return {
    target: {
      url: `ws://127.0.0.1:${port}/api/v1/scraper/ws`,
      headers: {},
      origin: `http://127.0.0.1:${port}`,
    },
    opened: opened.promise,
    close: async () => {
      for (const socket of sockets) socket.close();
      await server.shutdown();
    },
  };
}

Deno.test("requests kept while nobody waits: up to the bound, the oldest dropped with a warning, the rest in order", async () => {
  const server = socketServer();
  const warnings: string[] = [];
  const requests = new ServerRequests({ warn: (line) => warnings.push(line), log: () => {}, maxQueued: 5 });
  const group = requests.connect([server.target]);
  try {
    group.start();
    const socket = await server.opened;
    for (let id = 1; id <= 8; id++) socket.send(JSON.stringify({ type: "t", id, data: id }));
    socket.send("not json");
    socket.send(JSON.stringify({ type: "t", id: 9, data: 9 }));
    // The last one arriving at a waiter proves every earlier one has arrived.
    const deadline = Date.now() + 5000;
    while (requests.queued < 5 || warnings.length < 5) {
      assert.ok(Date.now() < deadline, `only ${requests.queued} kept, warnings: ${warnings.join("; ")}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(((await requests.next()) as { id: string }).id);
    assert.deepEqual(ids, ["0-5", "0-6", "0-7", "0-8", "0-9"]);
    assert.equal(warnings.filter((line) => line.startsWith("dropped server request")).length, 4);
    assert.ok(warnings.some((line) => line.includes("not JSON")));
    assert.equal(await requests.next({ timeoutMs: 5 }), null);
  } finally {
    await group.close();
    await server.close();
  }
});

Deno.test("a wait with replace ends the earlier one with replace; stopWaiting ends the rest with null", async () => {
  const requests = new ServerRequests({ warn: () => {}, log: () => {} });
  const first = requests.next({ replace: true });
  const plain = requests.next();
  const second = requests.next({ replace: true });
  assert.equal(await first, REPLACED);
  requests.stopWaiting();
  assert.equal(await plain, null);
  assert.equal(await second, null);
  assert.equal(await requests.next(), null, "after stopWaiting, waits end at once");
});

Deno.test("the lazily registered server-request and document commands are exactly their groups' commands", async () => {
  const { DOCUMENT_COMMAND_TYPES, SERVER_REQUEST_COMMAND_TYPES } = await import("../src/app.ts");
  const { serverRequestCommands } = await import("../src/commands/server_request_commands.ts");
  const { documentCommands } = await import("../src/commands/document_commands.ts");
  const requests = new ServerRequests({ warn: () => {}, log: () => {} });
  assert.deepEqual(
    [...SERVER_REQUEST_COMMAND_TYPES].sort(),
    Object.keys(serverRequestCommands(requests)).sort(),
  );
  const documents = documentCommands({ session: {} as never, maxBytes: 1 });
  assert.deepEqual([...DOCUMENT_COMMAND_TYPES].sort(), Object.keys(documents).sort());
});
