import type { CachedReferences } from "../cache/cached_references.ts";

/** A CV as the scraper sent it, with its reference number under RT-CV's name `referenceNumber`. */
export type Cv = Record<string, unknown> & { referenceNumber: string };

/** Names where a secret came from (`the mock secret "users"`) and how to fix its shape. */
export interface SecretSource {
  readonly source: string;
  readonly hint: string;
}

/**
 * What the CV and secret commands need from "the RT-CV side": a live fleet of servers or the mock.
 * `set_credentials` and `set_mock` each install one in the {@link import("./session.ts").Session}.
 */
export interface RtcvBackend {
  /** `live` talks to servers; `mock` answers locally. */
  readonly kind: "mock" | "live";
  /** The reference cache this mode uses (mock mode has its own, in memory). */
  readonly references: CachedReferences;
  /** Sends a validated CV; true when the primary server matched it. */
  sendCv(cv: Cv): Promise<boolean>;
  /** Reads the secret `key`; mock mode answers `null` for a secret it was not given. */
  getSecret(key: string, encryptionKey: string): Promise<unknown>;
  /** Where a secret of the wrong shape came from, and how to fix it, for error messages. */
  describeSecretSource(key: string): SecretSource;
  /** Starts background work (delivering what earlier runs left in the outbox); called once installed. */
  start(): void;
  /**
   * Stops background work and waits for it: at exit with the drain budget (default), when replaced with
   * `drainMs: 0` (stop now; the outbox keeps what was not delivered).
   */
  close(options?: { drainMs?: number }): Promise<void>;
}
