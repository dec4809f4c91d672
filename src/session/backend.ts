import type { CachedReferences } from "../cache/cached_references.ts";
import { ClientError } from "../errors.ts";

/** A CV as the scraper sent it, with its reference number under RT-CV's name `referenceNumber`. */
export type Cv = Record<string, unknown> & { referenceNumber: string };

/** A CV document: the CV (its metadata) and the file, as `send_cv_document` checked them. */
export interface CvDocument {
  readonly cv: Cv;
  readonly file: Uint8Array<ArrayBuffer>;
  /** The file's content type, e.g. `application/pdf`. */
  readonly contentType: string;
}

/** A login for the site a scraper scrapes (a login user of RT-CV, or a users secret). */
export interface LoginUser {
  readonly username: string;
  readonly password: string;
}

/** The primary has no secrets route (the newest RT-CV removed it); the message says so. */
export class NoSecretsRouteError extends ClientError {
  override name = "NoSecretsRouteError";
}

/** The primary has no list route (`allCVs`: an older RT-CV); the message says to send CVs one by one. */
export class NoListRouteError extends ClientError {
  override name = "NoListRouteError";
}

/** The mirrors' copies of a CV (or list) could not be committed to the outbox; the message says why. */
export class MirrorCopiesError extends ClientError {
  override name = "MirrorCopiesError";
}

/** Something needs the login-users key pair and none is set; the message says how to set one. */
export class NoKeyPairError extends ClientError {
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
  /** Every server's origin, the primary first; none in mock mode (for the health endpoint). */
  readonly origins: readonly string[];
  /** Why the primary counts as failing, or null while it works (always null in mock mode). */
  readonly failing: string | null;
  /**
   * Sends a validated CV; true when the primary server matched it, once its reference number is cached for
   * 72 hours in {@link references}. Throws the primary's failure (an `RtcvApiError` naming its role), or
   * {@link MirrorCopiesError} when the mirrors' copies were not stored.
   */
  sendCv(cv: Cv): Promise<boolean>;
  /**
   * Sends a validated CV document to the primary (mirrors get it once the primary accepted it); true on a
   * match, once its reference number is cached for 72 hours (as {@link sendCv}).
   */
  sendCvDocument(document: CvDocument): Promise<boolean>;
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
  /**
   * Sends a checked, de-duplicated, non-empty list of CVs (`allCVs`); resolves once it is accepted. Throws
   * {@link NoListRouteError} when the primary has no list route.
   */
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
