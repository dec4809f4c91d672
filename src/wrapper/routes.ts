/**
 * The HTTP routes of wrapper mode (the Go client v2's interface at `$SCRAPER_ADDRESS`), as a thin adapter over
 * the command registry: each route turns its request into one v1 command line, hands it to `dispatch` (the
 * registry, which validates and runs it like a line on stdin), and maps the answer to v2's HTTP answer.
 * No route validates or handles anything itself beyond decoding the body (JSON, raw text, multipart).
 *
 * Any method works on the v2 paths; `POST /command` takes one v1 line as its body and answers the v1 answer
 * object. An error answer is status 400 with the message as `text/plain`; a body over the line limit 413.
 *
 * @module
 */

import type { Dispatch } from "../debug/command_log.ts";
import type { Answer } from "../protocol/answers.ts";
import { type CommandLine, readCommandLine } from "../protocol/command_line.ts";

/** What the routes need. */
export interface RouteOptions {
  /** Answers one parsed command line (the registry's `dispatch`, with the debug log when it is on). */
  readonly dispatch: Dispatch;
  /** The longest body accepted, in bytes (`RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES`). */
  readonly maxBodyBytes: number;
  /** Told about every command line before it is dispatched (the input log). */
  readonly onLine?: (text: string) => void;
}

/** A route's decoded request: the command's content, or an HTTP answer for a body that cannot be decoded. */
type Decoded = { readonly content: unknown } | Response;

interface Route {
  /** The v1 command the route runs. */
  readonly type: string;
  /** Turns the body into the command's content. */
  readonly decode: (body: Uint8Array, request: Request) => Decoded | Promise<Decoded>;
  /** Turns the `ok` answer's content into the v2 answer body (JSON). */
  readonly answer: (content: unknown) => unknown;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A body in `text/plain`, for errors. */
function text(status: number, message: string): Response {
  return new Response(message + "\n", { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function jsonResponse(value: unknown): Response {
  return new Response(JSON.stringify(value ?? null), { headers: { "content-type": "application/json" } });
}

function utf8(body: Uint8Array): string | Response {
  try {
    return decoder.decode(body);
  } catch {
    return text(400, "the body is not valid UTF-8");
  }
}

/** A JSON body (`what` says what it should hold). */
function jsonBody(what: string): Route["decode"] {
  return (body) => {
    const decoded = utf8(body);
    if (decoded instanceof Response) return decoded;
    if (decoded.trim() === "") return text(400, `the body is empty; expected ${what}`);
    try {
      return { content: JSON.parse(decoded) };
    } catch {
      return text(400, `the body is not valid JSON; expected ${what}`);
    }
  };
}

/** The raw body is a reference number (v2's cache routes). */
const rawBody: Route["decode"] = (body) => {
  const decoded = utf8(body);
  return decoded instanceof Response ? decoded : { content: decoded };
};

/** `/send_full_cv`: multipart with a `metadata` part (the CV JSON) and a `cv` part (the file). */
const documentBody: Route["decode"] = async (body, request) => {
  const type = request.headers.get("content-type") ?? "";
  const expected =
    "expected multipart/form-data with a part metadata (the CV as JSON) and a part cv (the file)";
  if (!/^multipart\/form-data\s*;/i.test(type)) {
    return text(400, `the body is not multipart/form-data; ${expected}`);
  }
  let form: FormData;
  try {
    form = await new Response(body as Uint8Array<ArrayBuffer>, { headers: { "content-type": type } })
      .formData();
  } catch {
    return text(400, `the multipart body cannot be read; ${expected}`);
  }
  const metadata = form.getAll("metadata");
  const files = form.getAll("cv");
  if (metadata.length !== 1) return text(400, `found ${metadata.length} metadata parts; ${expected}`);
  if (files.length !== 1) return text(400, `found ${files.length} cv parts; ${expected}`);
  const [file] = files;
  if (typeof file === "string") return text(400, `the cv part is not a file; ${expected}`);
  const metadataText = typeof metadata[0] === "string" ? metadata[0] : await metadata[0].text();
  let cv: unknown;
  try {
    cv = JSON.parse(metadataText);
  } catch {
    return text(400, `the metadata part is not valid JSON; ${expected}`);
  }
  return {
    content: {
      cv,
      file_base64: new Uint8Array(await file.arrayBuffer()).toBase64(),
      content_type: file.type === "" ? "application/octet-stream" : file.type,
    },
  };
};

const none: Route["decode"] = () => ({ content: undefined });
const always = (value: unknown) => () => value;
const same = (content: unknown) => content;

/** The Go client v2's routes, by path. */
const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ["/send_cv", {
    type: "send_cv_outcome",
    decode: jsonBody("a CV object"),
    answer: (content) => (content as { sent: boolean }).sent,
  }],
  ["/send_full_cv", {
    type: "send_cv_document_outcome",
    decode: documentBody,
    answer: (content) => (content as { sent: boolean }).sent,
  }],
  ["/cvs_list", { type: "send_cvs_list", decode: jsonBody("a JSON array of CVs"), answer: always(true) }],
  ["/users", { type: "get_login_users", decode: none, answer: same }],
  ["/set_cached_reference", { type: "set_cached_reference", decode: rawBody, answer: always(true) }],
  ["/set_short_cached_reference", {
    type: "set_short_cached_reference",
    decode: rawBody,
    answer: always(true),
  }],
  ["/get_cached_reference", { type: "has_cached_reference", decode: rawBody, answer: same }],
  // A second waiting call ends the first one (it answers 400), as in v2.
  ["/server_request", {
    type: "next_server_request",
    decode: () => ({ content: { replace: true } }),
    answer: same,
  }],
  [
    "/server_response",
    {
      type: "server_response",
      decode: jsonBody('an answer {"id":"...","type":"...","data":...}'),
      answer: always(true),
    },
  ],
]);

/** Reads at most `max` bytes of the body; null when it is longer. */
async function readBody(request: Request, max: number): Promise<Uint8Array | null> {
  if (request.body === null) return new Uint8Array(0);
  const declared = Number(request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > max) {
    await request.body.cancel().catch(() => {});
    return null;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > max) return null; // leaving the loop cancels the stream
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/**
 * The request handler of wrapper mode. It never throws: every failure is an answer (400 for bad input, 413
 * for a body over the limit, 404 for an unknown path, 500 for a bug).
 */
export function wrapperHandler(options: RouteOptions): (request: Request) => Promise<Response> {
  /** Runs one v2 route's command: the line is built, not parsed (the input log gets its JSON text). */
  const run = async (line: CommandLine): Promise<Answer> => {
    options.onLine?.(JSON.stringify({ type: line.type, content: line.content }));
    return await options.dispatch(line);
  };
  const handle = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const route = ROUTES.get(path);
    if (route === undefined && path !== "/command") {
      return text(
        404,
        `404 not found: ${path.slice(0, 100)}; the routes are /command, ${[...ROUTES.keys()].join(", ")}`,
      );
    }
    if (route === undefined && request.method !== "POST") {
      return text(405, "/command takes POST with one command line as its body");
    }
    let body: Uint8Array | null;
    try {
      body = await readBody(request, options.maxBodyBytes);
    } catch {
      return text(400, "the body could not be read");
    }
    if (body === null) {
      return text(
        413,
        `the body is longer than ${options.maxBodyBytes} bytes (RTCV_SCRAPER_CLIENT_MAX_LINE_BYTES)`,
      );
    }
    if (route === undefined) {
      const line = utf8(body);
      if (line instanceof Response) return line;
      options.onLine?.(line);
      const answer = await options.dispatch(readCommandLine({ kind: "text", text: line }));
      return answer.type === "error" ? text(400, answer.content) : jsonResponse(answer);
    }
    const decoded = await route.decode(body, request);
    if (decoded instanceof Response) return decoded;
    const answering = run({ type: route.type, content: decoded.content });
    if (path === "/server_request") {
      // A caller that goes away must not take the next request with it: its wait is ended.
      const cancel = () => run({ type: "next_server_request", content: { cancel: true } });
      request.signal.addEventListener("abort", cancel, { once: true });
      answering.finally(() => request.signal.removeEventListener("abort", cancel));
    }
    const answer = await answering;
    if (answer.type === "error") return text(400, answer.content);
    return jsonResponse(route.answer(answer.type === "ok" ? answer.content : undefined));
  };
  return async (request) => {
    try {
      return await handle(request);
    } catch (error) {
      return text(500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
}
