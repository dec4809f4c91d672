// A scraper in Node.js that drives rtcv_scraper_client in mock mode (nothing is sent anywhere).
//
//     node examples/mock_scraper.mjs
//
// The client is a child process: write one JSON command per line to its stdin, read one JSON answer per line
// from its stdout (the first is the ready line). Each command carries an "id" and its answer the same "id",
// so commands may be sent without waiting for each other; a client without answer ids answers in order. With
// the command installed (`deno task install`) or the compiled binary, spawn "rtcv_scraper_client" instead of
// deno; here the deno is $DENO, else deno on PATH, else `npx -y deno@2.9.6` (Deno from the npm registry).
// deno-lint-ignore-file no-console -- an example program: printing is its job
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const mainTs = fileURLToPath(new URL("../main.ts", import.meta.url));

function clientCommand() {
  if (process.env.DENO) return [process.env.DENO, "run", "-A", mainTs];
  const hasDeno = spawnSync("deno", ["--version"], { stdio: "ignore" }).status === 0;
  return hasDeno ? ["deno", "run", "-A", mainTs] : ["npx", "-y", "deno@2.9.6", "run", "-A", mainTs];
}

class Client {
  #child;
  #pending = new Map(); // id -> { resolve, reject }, in the order sent
  #nextId = 1;
  ready;

  constructor() {
    const [command, ...args] = clientCommand();
    this.#child = spawn(command, args, {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, RTCV_SCRAPER_CLIENT_KV: ":memory:" },
    });
    const lines = createInterface({ input: this.#child.stdout });
    this.ready = new Promise((resolve, reject) => {
      let first = true;
      lines.on("line", (line) => {
        const answer = JSON.parse(line);
        if (first) {
          first = false;
          return answer.type === "ready"
            ? resolve()
            : reject(new Error(`expected the ready line, got ${line}`));
        }
        // By id when the answer carries one, else the oldest command waiting.
        const id = answer.id ?? this.#pending.keys().next().value;
        const call = this.#pending.get(id);
        this.#pending.delete(id);
        if (answer.type === "error") call.reject(new Error(answer.content));
        else call.resolve(answer.content);
      });
    });
  }

  call(type, content) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#child.stdin.write(
        JSON.stringify(content === undefined ? { type, id } : { type, id, content }) + "\n",
      );
    });
  }

  close() {
    return new Promise((resolve) => {
      this.#child.on("exit", (code) => resolve(code));
      this.#child.stdin.end();
    });
  }
}

// A real scraper would fetch these from a website.
const scraped = [
  { referenceNumber: "vacancy-1", presentation: "Experienced welder", driversLicenses: ["B"] },
  { referenceNumber: "vacancy-2", presentation: "Junior developer" },
  { referenceNumber: "vacancy-1", presentation: "Experienced welder (seen again)" },
];

const client = new Client();
await client.ready;
await client.call("set_mock", { secrets: { login: { username: "scraper", password: "hunter2" } } });
const login = await client.call("get_user_secret", { key: "login", encryption_key: "not used in mock mode" });
console.log(`login: ${login.username}`);
for (const cv of scraped) {
  if (await client.call("has_cached_reference", cv.referenceNumber)) {
    console.log(`skip ${cv.referenceNumber}: already scraped`);
    continue;
  }
  const matched = await client.call("send_cv", cv);
  console.log(`sent ${cv.referenceNumber}: ${matched ? "matched" : "no match"}`);
}
// Sent together, answered as each is ready.
const results = await Promise.all(
  ["vacancy-3", "vacancy-4", "vacancy-3"].map((referenceNumber) =>
    client.call("send_cv", { referenceNumber })
  ),
);
console.log(`concurrent sends: ${results.join(", ")}`);
try {
  await client.call("send_cv", { referenceNumber: "" });
} catch (error) {
  console.log(`rejected: ${error.message}`);
}
await client.call("ping");
console.log(`client exited with code ${await client.close()}`);
