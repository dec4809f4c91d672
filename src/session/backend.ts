import type { CachedReferences } from "../cache/cached_references.ts";
import { CommandError } from "../commands/command_error.ts";

/** A CV as the scraper sent it, with its reference number under RT-CV's name `referenceNumber`. */
export type Cv = Record<string, unknown> & { referenceNumber: string };

/** A login for the site a scraper scrapes (a login user of RT-CV, or a users secret). */
export interface LoginUser {
  readonly username: string;
  readonly password: string;
}

/** The primary has no secrets route (the newest RT-CV removed it); the message says so. */
export class NoSecretsRouteError extends CommandError {
  override name = "NoSecretsRouteError";
}

/** Something needs the login-users key pair and none is set; the message says how to set one. */
export class NoKeyPairError extends CommandError {
  override name = "NoKeyPairError";
}

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
  /**
   * Reads the secret `key`; mock mode answers `null` for a secret it was not given. Throws
   * {@link NoSecretsRouteError} when the primary has no secrets route.
   */
  getSecret(key: string, encryptionKey: string): Promise<unknown>;
  /**
   * The login users with their passwords opened (mock mode: the mock users). Throws {@link NoKeyPairError}
   * when live mode has no key pair.
   */
  getLoginUsers(): Promise<LoginUser[]>;
  /** Sends a checked, de-duplicated, non-empty list of CVs (`allCVs`); resolves once it is accepted. */
  sendCvsList(cvs: readonly Cv[]): Promise<void>;
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
