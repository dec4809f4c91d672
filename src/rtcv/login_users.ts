/**
 * Login users of today's RT-CV: the scraper's NaCl box key pair, its check against the primary's
 * registered `scraperPubKey`, and reading the users with their passwords opened.
 *
 * @module
 */

import { PRIVATE_KEY_ENV_VAR, PUBLIC_KEY_ENV_VAR } from "../config/config.ts";
import type { BoxKeyPair } from "../crypto/sealed_box.ts";
import { ClientError } from "../errors.ts";
import type { LoginUser } from "../session/backend.ts";
import { type RtcvApiClient, RtcvApiError } from "./api_client.ts";

/** The random bytes RT-CV puts in front of every password before sealing it. */
export const PASSWORD_PADDING_BYTES = 32;
/** How to set a key pair, for error messages. */
export const KEY_PAIR_HINT =
  `set a key pair with ${PUBLIC_KEY_ENV_VAR} / ${PRIVATE_KEY_ENV_VAR}, the config's ` +
  "public_key / private_key, or public_key / private_key in set_credentials";

/** A login-users key pair is malformed or does not work; the message names where it came from, never the keys. */
export class KeyPairError extends ClientError {
  override name = "KeyPairError";
}

/**
 * The primary's login users could not be checked or read (the route is missing, the server failed, or it
 * holds another public key); the message names the primary and what happened.
 */
export class LoginUsersError extends ClientError {
  override name = "LoginUsersError";
}

type SealedBoxModule = typeof import("../crypto/sealed_box.ts");
let sealedBoxModule: Promise<SealedBoxModule> | null = null;

/**
 * The NaCl code, loaded on first use: scrapers without login users do not pay for loading it at start-up
 * (measured: about 18 ms more to the ready line and 5 MiB more RSS when imported eagerly).
 */
function loadSealedBox(): Promise<SealedBoxModule> {
  sealedBoxModule ??= import("../crypto/sealed_box.ts");
  return sealedBoxModule;
}

/** The key pair as configured: base64 text of 32 bytes each. `privateKey` is a secret. */
export interface KeyPairText {
  readonly publicKey: string;
  readonly privateKey: string;
}

/** A checked key pair: the base64 public key and the raw pair. Never shows the private key. */
export class LoginKeyPair {
  /** Base64 of the public key, as RT-CV stores it. */
  readonly publicKey: string;
  readonly #pair: BoxKeyPair;
  readonly #nacl: SealedBoxModule;

  private constructor(publicKey: string, pair: BoxKeyPair, nacl: SealedBoxModule) {
    this.publicKey = publicKey;
    this.#pair = pair;
    this.#nacl = nacl;
  }

  /**
   * Decodes and checks a pair: both keys base64 of 32 bytes, the public key belonging to the private key, and
   * a test message sealed to the public key opens with the pair. Throws a {@link KeyPairError} that names
   * `source` and never the keys.
   */
  static async from(text: KeyPairText, source: string): Promise<LoginKeyPair> {
    const nacl = await loadSealedBox();
    const { fromBase64, KEY_BYTES, openSealedBox, publicKeyOf, sealAnonymous, toBase64 } = nacl;
    const publicKey = fromBase64(text.publicKey);
    const secretKey = fromBase64(text.privateKey);
    if (publicKey === null || publicKey.length !== KEY_BYTES) {
      throw new KeyPairError(`the public key (${source}) must be base64 of ${KEY_BYTES} bytes`);
    }
    if (secretKey === null || secretKey.length !== KEY_BYTES) {
      throw new KeyPairError(`the private key (${source}) must be base64 of ${KEY_BYTES} bytes`);
    }
    const pair = { publicKey, secretKey };
    const test = crypto.getRandomValues(new Uint8Array(16));
    const opened = openSealedBox(sealAnonymous(test, publicKey), pair);
    if (
      toBase64(publicKeyOf(secretKey)) !== toBase64(publicKey) || opened === null || !sameBytes(opened, test)
    ) {
      throw new KeyPairError(
        `the key pair (${source}) does not work: the public key does not belong to the private key`,
      );
    }
    return new LoginKeyPair(toBase64(publicKey), pair, nacl);
  }

  /** Opens a password RT-CV sealed (base64 sealed box, 32 random bytes in front); null when it cannot. */
  openPassword(encryptedPassword: string): string | null {
    const sealed = this.#nacl.fromBase64(encryptedPassword);
    if (sealed === null) return null;
    const opened = this.#nacl.openSealedBox(sealed, this.#pair);
    if (opened === null || opened.length < PASSWORD_PADDING_BYTES) return null;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(opened.subarray(PASSWORD_PADDING_BYTES));
    } catch {
      return null;
    }
  }

  /** Never the private key. */
  toString(): string {
    return `LoginKeyPair(${this.publicKey})`;
  }

  /** Never the private key. */
  toJSON(): { publicKey: string } {
    return { publicKey: this.publicKey };
  }

  /** Never the private key. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }
}

/** What the primary offers for login users, found out at `set_credentials`. */
export type LoginUsersRoute = "available" | "missing" | "not_checked";

/**
 * Checks the pair against the primary: registers the public key when the server has none, fails when it has
 * another one (never replacing it: that deletes the stored users). Resolves whether the route exists;
 * throws {@link LoginUsersError} otherwise.
 */
export async function checkKeyPair(
  primary: RtcvApiClient,
  pair: LoginKeyPair,
  log: (message: string) => void,
): Promise<LoginUsersRoute> {
  let registered: string;
  try {
    registered = (await primary.scraperUsers()).scraperPubKey;
  } catch (error) {
    if (error instanceof RtcvApiError && error.missingRoute) {
      log(
        `login users: primary ${primary.origin} has no scraperUsers route (${error.message}); key pair not checked`,
      );
      return "missing";
    }
    throw new LoginUsersError(`login users check failed: primary ${describe(error)}`);
  }
  if (registered === "") {
    try {
      await primary.setPublicKey(pair.publicKey);
    } catch (error) {
      throw new LoginUsersError(`registering the public key failed: primary ${describe(error)}`);
    }
    log(`login users: registered public key ${pair.publicKey} with primary ${primary.origin}`);
    return "available";
  }
  if (registered !== pair.publicKey) {
    throw new LoginUsersError(
      `the public key of this key pair (${pair.publicKey}) differs from the one registered with primary ` +
        `${primary.origin} (${registered}); use the key pair that belongs to the registered public key. ` +
        "The client does not replace it: replacing the public key on the server deletes the stored users",
    );
  }
  return "available";
}

/**
 * Reads the login users from the primary and opens their passwords. A user whose password cannot be opened
 * is left out, with a warning naming the user. Throws {@link LoginUsersError} when they cannot be read.
 */
export async function readLoginUsers(
  primary: RtcvApiClient,
  pair: LoginKeyPair,
  warn: (message: string) => void,
): Promise<LoginUser[]> {
  let answer;
  try {
    answer = await primary.scraperUsers();
  } catch (error) {
    if (error instanceof RtcvApiError && error.missingRoute) {
      throw new LoginUsersError(
        `primary ${primary.origin} has no login-users route (scraperUsers); ${error.message}`,
      );
    }
    throw new LoginUsersError(`primary ${describe(error)}`);
  }
  const users: LoginUser[] = [];
  for (const user of answer.users) {
    const password = user.encryptedPassword === null ? null : pair.openPassword(user.encryptedPassword);
    if (password === null) {
      warn(
        `login user ${JSON.stringify(user.username)} from primary ${primary.origin} left out: ` +
          (user.encryptedPassword === null
            ? "the server sent no encrypted password (does the key have the scraper role?)"
            : "its password cannot be opened with this key pair"),
      );
      continue;
    }
    users.push({ username: user.username, password });
  }
  return users;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
