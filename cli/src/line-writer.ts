/**
 * Lines to a stream in few writes: lines are joined and written once 64 KiB have gathered
 * or the event loop turns (so a follower still sees each line at once), not one write
 * (a syscall for files and pipes) per line.
 */

/** Bytes gathered before a write regardless of the event loop. */
const FLUSH_AT = 64 * 1024;

/** A buffered line writer over one stream. */
export class LineWriter {
  readonly #stream: { write(text: string): unknown };
  #parts: string[] = [];
  #size = 0;
  #scheduled = false;

  constructor(stream: { write(text: string): unknown }) {
    this.#stream = stream;
  }

  /** Queues `line` and a newline. */
  readonly line = (line: string): void => {
    this.#parts.push(line, "\n");
    this.#size += line.length + 1;
    if (this.#size >= FLUSH_AT) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  };

  /** Writes what is queued now. */
  readonly flush = (): void => {
    this.#scheduled = false;
    if (this.#parts.length === 0) return;
    const text = this.#parts.join("");
    this.#parts = [];
    this.#size = 0;
    this.#stream.write(text);
  };
}
