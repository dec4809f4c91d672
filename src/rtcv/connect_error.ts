import { ClientError } from "../errors.ts";

/**
 * Live mode could not be entered (`connectLive`): credentials of the wrong form, a server failing its
 * checks, a broken key pair, a store that cannot be opened. The message names the server's role and origin
 * and the step (`primary health check failed: https://rtcv.example.com could not be reached: ...`); the
 * failure it stands for, when there is one, is its `cause`. Its own module, so the program can catch it at
 * start-up without loading the RT-CV client.
 */
export class ConnectError extends ClientError {
  override name = "ConnectError";
}
