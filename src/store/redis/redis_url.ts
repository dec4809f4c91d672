/**
 * Reads `redis://[user:password@]host:port[/db]` and `rediss://...` (TLS) URLs into connection settings.
 * The password is kept apart from everything that is printed: {@link RedisAddress.address} is what
 * errors and logs name.
 *
 * @module
 */

/** Where a Redis server is and how to log in; only `address` may be shown. */
export interface RedisAddress {
  /** `host:port`, the name of the server in every message. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** The database number from the path (default 0). */
  readonly db: number;
  /** The ACL user name, or undefined. */
  readonly username: string | undefined;
  /** The password (a secret: never print it), or undefined. */
  readonly password: string | undefined;
  /** True for `rediss://`. */
  readonly tls: boolean;
}

/**
 * Parses a Redis URL; the default port is 6379.
 *
 * @throws {Error} naming what is wrong (never the password) when the URL has no host, a bad port or a
 * bad database number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRedisUrl } from "./redis_url.ts";
 * const redis = parseRedisUrl("redis://scraper:s3cret@cache.internal:6380/3");
 * assert.equal(redis.address, "cache.internal:6380");
 * assert.equal(redis.db, 3);
 * assert.equal(redis.password, "s3cret");
 * ```
 */
export function parseRedisUrl(text: string): RedisAddress {
  const tls = /^rediss:/i.test(text);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error("is not a valid redis:// URL: expected redis://[user:password@]host:port[/db]");
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") throw new Error("has no host: expected redis://[user:password@]host:port[/db]");
  const port = url.port === "" ? 6379 : Number(url.port);
  const path = url.pathname.replace(/^\//, "");
  const db = path === "" ? 0 : /^[0-9]{1,5}$/.test(path) ? Number(path) : NaN;
  if (!Number.isInteger(db)) {
    throw new Error(`has a bad database number in its path: expected /0, /1, ... (at ${host}:${port})`);
  }
  const decode = (part: string) => part === "" ? undefined : decodeURIComponent(part);
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    address: `${shownHost}:${port}`,
    host,
    port,
    db,
    username: decode(url.username),
    password: decode(url.password),
    tls,
  };
}
