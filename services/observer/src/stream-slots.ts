import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A cap on concurrent server streams (GetFlows, GetAgentEvents, GetDebugEvents, peer
 * Notify), shared by every path that serves them: each open stream holds one slot.
 */
export class StreamSlots {
  #active = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`stream cap must be a positive integer, got ${max}`);
    }
  }

  /** Streams holding a slot now. */
  get active(): number {
    return this.#active;
  }

  /**
   * Takes a slot: returns its release function (safe to call more than once), or
   * undefined when all {@link max} slots are taken.
   */
  tryAcquire(): (() => void) | undefined {
    if (this.#active >= this.max) return undefined;
    this.#active++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#active--;
    };
  }

  /** The ResourceExhausted error a stream beyond the cap ends with. */
  refusal(): ConnectError {
    return new ConnectError(
      `too many concurrent streams: this server serves at most ${this.max} at a time ` +
        "(--max-concurrent-streams); retry when one has ended",
      Code.ResourceExhausted,
    );
  }
}
