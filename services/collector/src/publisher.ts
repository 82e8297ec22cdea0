import type { SealedFrame } from "./framer.ts";

/** What the publish queue needs from the broker (JetStream publish adapts to it). */
export interface FrameTransport {
  /**
   * Stores the bytes durably; resolves once the broker acknowledged them, rejects when
   * it did not (down, timed out, stream full). `msgId` makes a retry of a publish whose
   * acknowledgement was lost store the frame once.
   */
  publish(subject: string, payload: Uint8Array, msgId: string): Promise<void>;
  /** False while disconnected/reconnecting/closed: frames wait in the queue then. */
  connected(): boolean;
}

/** Publish queue settings and hooks. */
export interface PublishQueueOptions {
  readonly transport: FrameTransport;
  /** Subject for a partition (`periscope.raw.<node>.<partition>`). */
  readonly subjectFor: (partition: number) => string;
  /** Frames held at most (waiting, being retried or awaiting an ack); offer() refuses beyond. */
  readonly maxFrames: number;
  /** Publishes awaiting an acknowledgement at most (default 128). */
  readonly maxInFlight?: number;
  /** Wait after a refused publish before the next attempt, ms (default 250). */
  readonly retryMs?: number;
  /** Monotonic clock, ms (default performance.now). */
  readonly now?: () => number;
  /** The broker acknowledged a frame. */
  readonly onPublished?: (frame: SealedFrame, bytes: number) => void;
  /** A publish was refused; the frame is queued again (same seq, same msgId). */
  readonly onRetry?: (frame: SealedFrame, error: unknown) => void;
}

/** Idempotency key of a frame: one per collector boot, partition and seq. */
export function frameMsgId(frame: Pick<SealedFrame, "bootId" | "partition" | "seq">): string {
  return `${frame.bootId}.${frame.partition}.${frame.seq}`;
}

/**
 * Bounded FIFO of sealed frames in front of JetStream. Frames wait while the broker is
 * unreachable and are retried (same msgId) until it acknowledges them; nothing is
 * published to a subject nobody stores. When the queue is full, offer() refuses and
 * the caller counts the loss.
 */
export class PublishQueue {
  readonly #opts: PublishQueueOptions;
  readonly #maxInFlight: number;
  readonly #retryMs: number;
  readonly #now: () => number;
  #frames: (SealedFrame | undefined)[] = [];
  #head = 0;
  /** Frames refused by the broker, retried before new ones. */
  #retry: SealedFrame[] = [];
  #inFlight = 0;
  #retryAt = 0;
  #idle: (() => void) | undefined;

  constructor(opts: PublishQueueOptions) {
    this.#opts = opts;
    this.#maxInFlight = opts.maxInFlight ?? 128;
    this.#retryMs = opts.retryMs ?? 250;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Frames not yet published (waiting or to be retried). */
  get length(): number {
    return this.#frames.length - this.#head + this.#retry.length;
  }

  /** Publishes awaiting an acknowledgement. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Enqueues a frame; false when the queue is full (the frame is not kept). */
  offer(frame: SealedFrame): boolean {
    if (this.length + this.#inFlight >= this.#opts.maxFrames) return false;
    this.#frames.push(frame);
    return true;
  }

  /** Starts publishes while the transport is connected and fewer than maxInFlight are unacknowledged. */
  pump(): void {
    const { transport } = this.#opts;
    if (this.#retry.length > 0 && this.#now() < this.#retryAt) return;
    while (this.length > 0 && this.#inFlight < this.#maxInFlight && transport.connected()) {
      const frame = this.#take();
      if (frame === undefined) break;
      this.#publishOne(frame);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Publishes everything queued and waits for the acknowledgements, or until
   * `timeoutMs` passes. Returns the number of frames not acknowledged.
   */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = this.#now() + timeoutMs;
    while (this.#now() < deadline && (this.length > 0 || this.#inFlight > 0)) {
      this.pump();
      const settled = new Promise<void>((resolve) => {
        this.#idle = resolve;
      });
      const wait = Math.max(1, Math.min(this.#retryMs, deadline - this.#now()));
      await Promise.race([settled, Bun.sleep(wait)]);
      this.#idle = undefined;
    }
    return this.length + this.#inFlight;
  }

  /** Removes and returns every frame not yet published (for loss accounting on shutdown). */
  takeAll(): SealedFrame[] {
    const rest = [...this.#retry, ...this.#frames.slice(this.#head)].filter(
      (f): f is SealedFrame => f !== undefined,
    );
    this.#frames = [];
    this.#retry = [];
    this.#head = 0;
    return rest;
  }

  #take(): SealedFrame | undefined {
    const retried = this.#retry.shift();
    if (retried !== undefined) return retried;
    const frame = this.#frames[this.#head];
    this.#frames[this.#head] = undefined;
    this.#head++;
    return frame;
  }

  #publishOne(sent: SealedFrame): void {
    const bytes = sent.bytes;
    this.#inFlight++;
    let published: Promise<void>;
    try {
      published = this.#opts.transport.publish(
        this.#opts.subjectFor(sent.partition),
        bytes,
        frameMsgId(sent),
      );
    } catch (error) {
      published = Promise.reject(error);
    }
    published.then(
      () => {
        this.#inFlight--;
        this.#opts.onPublished?.(sent, bytes.length);
        this.#settled();
      },
      (error: unknown) => {
        this.#inFlight--;
        this.#retry.push(sent);
        this.#retryAt = this.#now() + this.#retryMs;
        this.#opts.onRetry?.(sent, error);
        this.#settled();
      },
    );
  }

  #settled(): void {
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.();
  }
}
