import type { CachedReferences } from "../cache/cached_references.ts";
import type { Cv, CvDocument, LoginUser, RtcvBackend, SecretSource } from "./backend.ts";

/**
 * Mock mode: no server is contacted. Every new CV "matches" (so it is cached like a matched CV in live
 * mode), and secrets come from what `set_mock` or the config gave.
 */
export class MockBackend implements RtcvBackend {
  /** Always `mock`. */
  readonly kind = "mock";
  /** The in-memory cache of mock mode (never the persistent store). */
  readonly references: CachedReferences;
  /** No servers in mock mode. */
  readonly origins: readonly string[] = [];
  /** Mock mode never fails. */
  readonly failing = null;
  readonly #secrets: ReadonlyMap<string, unknown>;
  readonly #loginUsers: readonly LoginUser[];

  /** Creates a mock over its own cache with the given secrets and login users. */
  constructor(
    references: CachedReferences,
    secrets: Record<string, unknown>,
    loginUsers: readonly LoginUser[] = [],
  ) {
    this.references = references;
    this.#secrets = new Map(Object.entries(secrets));
    this.#loginUsers = loginUsers.map((user) => ({ username: user.username, password: user.password }));
  }

  /** The mock login users (`set_mock` `login_users`, or the config's `mock_users`). */
  getLoginUsers(): Promise<LoginUser[]> {
    return Promise.resolve(this.#loginUsers.map((user) => ({ ...user })));
  }

  /** Accepts the list; nothing is sent. */
  sendCvsList(_cvs: readonly Cv[]): Promise<void> {
    return Promise.resolve();
  }

  /** Answers true once the reference is cached: in mock mode every CV not yet cached counts as matched. */
  async sendCv(cv: Cv): Promise<boolean> {
    await this.references.setLong(cv.referenceNumber);
    return true;
  }

  /** Answers true, like {@link sendCv}. */
  async sendCvDocument(document: CvDocument): Promise<boolean> {
    await this.references.setLong(document.cv.referenceNumber);
    return true;
  }

  /** The mock secret named `key`, or null. */
  getSecret(key: string, _encryptionKey: string): Promise<unknown> {
    return Promise.resolve(this.#secrets.has(key) ? this.#secrets.get(key) : null);
  }

  /** Tells how to provide a mock secret. */
  describeSecretSource(key: string): SecretSource {
    const name = JSON.stringify(key);
    return {
      source: `the mock secret ${name}`,
      hint: `provide it with {"type":"set_mock","content":{"secrets":{${name}:...}}} ` +
        "or with mock_secrets / mock_users in the config",
    };
  }

  /** Nothing runs in the background in mock mode. */
  start(): void {}

  /** Nothing runs in the background in mock mode. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
