/**
 * Bounds the requests in flight to each server (PROTOCOL.md section 13): at most `max` per origin; the
 * others wait their turn in the order they asked. A released slot goes straight to the longest waiter, so
 * no later request can overtake it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InFlightLimiter } from "./in_flight_limiter.ts";
 * const limiter = new InFlightLimiter(1);
 * const release = await limiter.acquire("https://a.example");
 * let second = false;
 * const waiting = limiter.acquire("https://a.example").then((done) => {
 *   second = true;
 *   done();
 * });
 * assert.equal(limiter.inFlight("https://a.example"), 1);
 * assert.equal(second, false);
 * release();
 * await waiting;
 * assert.equal(second, true);
 * ```
 *
 * @module
 */

interface Waiter {
  readonly grant: (release: () => void) => void;
  readonly cancelled: () => boolean;
}

interface OriginState {
  active: number;
  readonly queue: Waiter[];
  head: number;
}

/** At most `max` holders per origin at a time, first come first served. */
export class InFlightLimiter {
  readonly #max: number;
  readonly #origins = new Map<string, OriginState>();

  /** Allows `max` (at least 1) holders per origin. */
  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  /** The bound per origin. */
  get max(): number {
    return this.#max;
  }

  /** How many holders `origin` has now. */
  inFlight(origin: string): number {
    return this.#origins.get(origin)?.active ?? 0;
  }

  /**
   * Waits for a slot at `origin`; resolves with the function that gives it back (call it exactly once).
   * When `signal` aborts before the slot is granted, rejects with its reason and takes no slot.
   */
  acquire(origin: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let state = this.#origins.get(origin);
    if (state === undefined) {
      state = { active: 0, queue: [], head: 0 };
      this.#origins.set(origin, state);
    }
    if (state.active < this.#max && state.head === state.queue.length) {
      state.active++;
      return Promise.resolve(this.#releaser(origin, state));
    }
    const queued = state;
    const granted = new Promise<() => void>((resolve, reject) => {
      let cancelled = false;
      const onAbort = () => {
        cancelled = true;
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      queued.queue.push({
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        cancelled: () => cancelled,
      });
    });
    this.#grantNext(origin, queued); // waiters ahead may have given up, leaving a slot free
    return granted;
  }

  #releaser(origin: string, state: OriginState): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.active--;
      this.#grantNext(origin, state);
    };
  }

  #grantNext(origin: string, state: OriginState): void {
    while (state.active < this.#max && state.head < state.queue.length) {
      const waiter = state.queue[state.head++];
      if (waiter.cancelled()) continue;
      state.active++;
      waiter.grant(this.#releaser(origin, state));
    }
    if (state.head === state.queue.length) {
      state.queue.length = 0;
      state.head = 0;
      if (state.active === 0) this.#origins.delete(origin);
    } else if (state.head > 1024 && state.head * 2 > state.queue.length) {
      state.queue.splice(0, state.head);
      state.head = 0;
    }
  }
}
