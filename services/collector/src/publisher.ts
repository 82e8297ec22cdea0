import type { RawFrame } from "@periscope/proto";
import { encodeRawFrame } from "@periscope/wire";

/** What the publish queue needs from NATS (a NatsConnection adapts to it). */
export interface FrameTransport {
  /** Queues bytes for the server; throws when the connection cannot take them. */
  publish(subject: string, payload: Uint8Array): void;
  /** Resolves once the server has seen everything published so far. */
  flush(): Promise<void>;
  /** False while disconnected/reconnecting/closed: frames wait in the queue then. */
  connected(): boolean;
}

/** Publish queue settings and hooks. */
export interface PublishQueueOptions {
  readonly transport: FrameTransport;
  /** Subject for a partition (`periscope.raw.<node>.<partition>`). */
  readonly subjectFor: (partition: number) => string;
  /** Frames held at most; offer() refuses beyond it. */
  readonly maxFrames: number;
  /** Bytes published without a completed flush before publishing pauses (backpressure). */
  readonly maxUnflushedBytes?: number;
  /** A frame went out. */
  readonly onPublished?: (frame: RawFrame, bytes: number) => void;
  /** publish() threw: the frame is gone (its seq leaves a gap; its records are collector loss). */
  readonly onPublishError?: (frame: RawFrame, error: unknown) => void;
  /** flush() failed; publishing retries on the next pump(). */
  readonly onFlushError?: (error: unknown) => void;
}

/**
 * Bounded FIFO of sealed frames in front of NATS. Frames wait while NATS is
 * disconnected or has not acknowledged `maxUnflushedBytes` (slow server); when the
 * queue is full, offer() refuses and the caller counts the loss.
 */
export class PublishQueue {
  readonly #opts: PublishQueueOptions;
  readonly #maxUnflushed: number;
  #frames: (RawFrame | undefined)[] = [];
  #head = 0;
  #unflushedBytes = 0;
  #flushing: Promise<void> | undefined;

  constructor(opts: PublishQueueOptions) {
    this.#opts = opts;
    this.#maxUnflushed = opts.maxUnflushedBytes ?? 8 * 1024 * 1024;
  }

  /** Frames waiting to be published. */
  get length(): number {
    return this.#frames.length - this.#head;
  }

  /** Enqueues a frame; false when the queue is full (the frame is not kept). */
  offer(frame: RawFrame): boolean {
    if (this.length >= this.#opts.maxFrames) return false;
    this.#frames.push(frame);
    return true;
  }

  /** Publishes queued frames while the transport is connected and not behind. */
  pump(): void {
    const { transport } = this.#opts;
    while (this.length > 0 && this.#flushing === undefined && transport.connected()) {
      const frame = this.#frames[this.#head];
      if (frame === undefined) break;
      this.#frames[this.#head] = undefined;
      this.#head++;
      this.#publishOne(frame);
      if (this.#unflushedBytes >= this.#maxUnflushed) this.#startFlush();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Publishes everything queued and waits for the server to acknowledge it, or until
   * `timeoutMs` passes. Returns the number of frames still queued (not published).
   */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      this.pump();
      if (this.length === 0 && this.#flushing === undefined) {
        if (this.#unflushedBytes === 0 || !this.#opts.transport.connected()) break;
        this.#startFlush();
      }
      const wait = this.#flushing ?? Bun.sleep(5);
      await Promise.race([wait, Bun.sleep(Math.max(1, deadline - performance.now()))]);
    }
    return this.length;
  }

  /** Removes and returns every queued frame (for loss accounting on shutdown). */
  takeAll(): RawFrame[] {
    const rest = this.#frames.slice(this.#head).filter((f) => f !== undefined);
    this.#frames = [];
    this.#head = 0;
    return rest;
  }

  #publishOne(frame: RawFrame): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeRawFrame(frame);
      this.#opts.transport.publish(this.#opts.subjectFor(frame.partition), bytes);
    } catch (error) {
      this.#opts.onPublishError?.(frame, error);
      return;
    }
    this.#unflushedBytes += bytes.length;
    this.#opts.onPublished?.(frame, bytes.length);
  }

  #startFlush(): void {
    const flushed = this.#unflushedBytes;
    this.#flushing = this.#opts.transport.flush().then(
      () => {
        this.#unflushedBytes = Math.max(0, this.#unflushedBytes - flushed);
        this.#flushing = undefined;
        this.pump();
      },
      (error: unknown) => {
        this.#flushing = undefined;
        this.#opts.onFlushError?.(error);
      },
    );
  }
}
