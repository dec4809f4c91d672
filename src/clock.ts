/** A source of the current time in milliseconds since the epoch; injected so lifetimes can be tested. */
export interface Clock {
  /** The current time, in milliseconds since the Unix epoch. */
  now(): number;
}

/** The wall clock, shifted by `offsetMs` (used by tests to jump ahead days without waiting). */
export function systemClock(offsetMs = 0): Clock {
  return offsetMs === 0 ? { now: () => Date.now() } : { now: () => Date.now() + offsetMs };
}

/** A clock that only moves when told to: for tests of the 72 h and 12 h lifetimes. */
export class ManualClock implements Clock {
  #nowMs: number;

  /** Starts at `startMs` (default: the wall clock's time at construction). */
  constructor(startMs = Date.now()) {
    this.#nowMs = startMs;
  }

  /** The time this clock was last set or advanced to. */
  now(): number {
    return this.#nowMs;
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    this.#nowMs += ms;
  }
}
