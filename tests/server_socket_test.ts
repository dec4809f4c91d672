/**
 * The websocket to one server, against a raw TCP server that does the RFC 6455 handshake itself and reads the
 * client's frames: so the test sees the ping frames (opcode 9), which `Deno.upgradeWebSocket` answers
 * without showing them.
 */
import assert from "node:assert/strict";
import { ServerSocket } from "../src/rtcv/server_socket.ts";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

interface RawConnection {
  readonly head: string;
  readonly opcodes: number[];
  readonly texts: string[];
  readonly conn: Deno.Conn;
  readonly ended: Promise<void>;
}

/** A websocket server that records each connection's upgrade request and the opcodes of its frames. */
class RawWebSocketServer {
  readonly connections: RawConnection[] = [];
  /** Whether a ping gets its pong (opcode 10), as every live peer's does. */
  answerPings = true;
  readonly #listener: Deno.Listener;
  #changed = Promise.withResolvers<void>();
  readonly #accepting: Promise<void>;

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}/api/v1/scraper/ws`;
  }

  async waitFor(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#changed.promise, new Promise((resolve) => timer = setTimeout(resolve, 200))]);
      clearTimeout(timer);
    }
  }

  /** Sends a text frame (unmasked, as a server does) on connection `index`. */
  async sendText(index: number, text: string): Promise<void> {
    const payload = new TextEncoder().encode(text);
    assert.ok(payload.length < 126);
    await this.connections[index].conn.write(new Uint8Array([0x81, payload.length, ...payload]));
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const connection of this.connections) {
      try {
        connection.conn.close();
      } catch { /* already closed */ }
    }
    await this.#accepting;
    await Promise.all(this.connections.map((connection) => connection.ended));
  }

  #notify(): void {
    const changed = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    changed.resolve();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const opcodes: number[] = [];
        const texts: string[] = [];
        const ended = Promise.withResolvers<void>();
        const connection = { head: "", opcodes, texts, conn, ended: ended.promise };
        this.#serve(connection, conn).catch(() => {}).finally(() => ended.resolve());
      }
    } catch {
      // the listener closed
    }
  }

  async #serve(connection: { head: string } & RawConnection, conn: Deno.Conn): Promise<void> {
    let data = new Uint8Array(0);
    const buffer = new Uint8Array(65_536);
    const more = async () => {
      const count = await conn.read(buffer);
      if (count === null) throw new Error("closed");
      const joined = new Uint8Array(data.length + count);
      joined.set(data);
      joined.set(buffer.subarray(0, count), data.length);
      data = joined;
    };
    const text = () => new TextDecoder().decode(data);
    while (!text().includes("\r\n\r\n")) await more();
    const end = text().indexOf("\r\n\r\n");
    connection.head = text().slice(0, end);
    data = data.slice(new TextEncoder().encode(text().slice(0, end + 4)).length);
    const key = /^sec-websocket-key:\s*(.+)$/im.exec(connection.head)![1].trim();
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await conn.write(new TextEncoder().encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ));
    this.connections.push(connection);
    this.#notify();
    for (;;) {
      while (data.length < 2) await more();
      const opcode = data[0] & 0x0f;
      const masked = (data[1] & 0x80) !== 0;
      let length = data[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        while (data.length < 4) await more();
        length = (data[2] << 8) | data[3];
        offset = 4;
      }
      assert.ok(length < 65_536 && masked, "client frames are masked and small here");
      while (data.length < offset + 4 + length) await more();
      const mask = data.subarray(offset, offset + 4);
      const payload = data.slice(offset + 4, offset + 4 + length).map((byte, i) => byte ^ mask[i % 4]);
      connection.opcodes.push(opcode);
      if (opcode === 1) connection.texts.push(new TextDecoder().decode(payload));
      if (opcode === 9 && this.answerPings) {
        await conn.write(new Uint8Array([0x8a, payload.length, ...payload]));
      }
      data = data.slice(offset + 4 + length);
      this.#notify();
      if (opcode === 8) {
        conn.close();
        return;
      }
    }
  }
}

Deno.test("the socket sends the Authorization header and a ping frame (opcode 9) at every interval, on one connection", async () => {
  const server = new RawWebSocketServer();
  const messages: string[] = [];
  const socket = new ServerSocket(
    { url: server.url, headers: { Authorization: "Basic 111:abc" }, origin: "http://x" },
    { onMessage: (text) => messages.push(text), log: () => {}, pingIntervalMs: 150, startDelayMs: 0 },
  );
  try {
    socket.start();
    await server.waitFor(() => server.connections.length === 1, "a connection");
    const connection = server.connections[0];
    assert.match(connection.head, /^GET \/api\/v1\/scraper\/ws HTTP\/1\.1\r\n/);
    assert.match(connection.head, /^authorization: Basic 111:abc$/im);
    await server.waitFor(() => connection.opcodes.filter((op) => op === 9).length >= 3, "three pings");
    assert.equal(server.connections.length, 1, "answered pings keep the connection");
    await server.sendText(0, '{"type":"hello","id":1,"data":null}');
    await server.waitFor(() => messages.length === 1, "the message at the client");
    assert.deepEqual(messages, ['{"type":"hello","id":1,"data":null}']);
    assert.ok(socket.send('{"id":1}'));
    await server.waitFor(() => connection.texts.length === 1, "the client's message");
    assert.deepEqual(connection.texts, ['{"id":1}']);
  } finally {
    await socket.close();
    await server.close();
  }
});

Deno.test("the socket reconnects after the server drops it, waiting the configured delays", async () => {
  const server = new RawWebSocketServer();
  const logs: string[] = [];
  const socket = new ServerSocket(
    { url: server.url, headers: { Authorization: "Basic x" }, origin: "http://x" },
    { onMessage: () => {}, log: (line) => logs.push(line), reconnectDelaysMs: [30, 60] },
  );
  try {
    socket.start();
    await server.waitFor(() => server.connections.length === 1, "a connection");
    await server.waitFor(() => socket.connected, "the socket to be open");
    server.connections[0].conn.close();
    await server.waitFor(() => server.connections.length === 2, "a second connection");
    await server.waitFor(() => socket.connected, "the socket to be open again");
    assert.ok(logs.some((line) => /closed \(\d+\).*reconnecting in 30 ms/.test(line)), logs.join("\n"));
    assert.ok(!logs.some((line) => line.includes("Basic x")), "the header never reaches a log line");
  } finally {
    await socket.close();
    await server.close();
  }
});

Deno.test("a server that refuses the upgrade is retried with growing waits, and send answers false meanwhile", async () => {
  const attempts: number[] = [];
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    attempts.push(Date.now());
    return new Response("no", { status: 503 });
  });
  const logs: string[] = [];
  const socket = new ServerSocket(
    { url: `ws://127.0.0.1:${http.addr.port}/api/v1/scraper/ws`, headers: {}, origin: "http://y" },
    { onMessage: () => {}, log: (line) => logs.push(line), reconnectDelaysMs: [20, 40, 80] },
  );
  try {
    socket.start();
    const deadline = Date.now() + 10_000;
    while (logs.filter((line) => line.includes("reconnecting")).length < 4 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const waits = logs.filter((line) => line.includes("reconnecting")).map((line) =>
      Number(/reconnecting in (\d+) ms/.exec(line)![1])
    );
    assert.deepEqual(waits.slice(0, 4), [20, 40, 80, 80]);
    assert.match(logs[0], /could not connect: the server answered 503/);
    assert.equal(socket.send("x"), false);
  } finally {
    await socket.close();
    await http.shutdown();
  }
});

Deno.test("a peer that stops answering pings is dropped and the socket reconnects", async () => {
  const server = new RawWebSocketServer();
  server.answerPings = false;
  const logs: string[] = [];
  const socket = new ServerSocket(
    { url: server.url, headers: {}, origin: "http://z" },
    { onMessage: () => {}, log: (line) => logs.push(line), pingIntervalMs: 40, reconnectDelaysMs: [10] },
  );
  try {
    socket.start();
    await server.waitFor(() => server.connections.length >= 2, "a second connection after the silent one");
    assert.ok(logs.some((line) => line.includes("no answer to a ping within 40 ms")), logs.join("\n"));
    assert.equal(server.connections[0].opcodes.filter((op) => op === 9).length, 1, "one ping, then dropped");
  } finally {
    await socket.close();
    await server.close();
  }
});
