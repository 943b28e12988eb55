/**
 * A bounded buffer of text lines fed by raw output chunks.
 *
 * Chunks from a pipe split lines anywhere, so the partial tail is held until its newline
 * arrives (or until {@link LineBuffer.flush} at process exit).
 */
export interface LineBuffer {
  /** Appends a raw chunk; complete lines are stored, a trailing partial line is held. */
  push(chunk: Buffer | string): void;
  /** Stores the held partial line, if any (call when the stream ends). */
  flush(): void;
  /** A copy of the stored lines, oldest first, at most `capacity` of them. */
  lines(): string[];
  /**
   * Registers a listener called with every complete line from now on.
   * @returns a function that removes the listener.
   */
  onLine(listener: (line: string) => void): () => void;
}

/**
 * Creates a {@link LineBuffer} that keeps the last `capacity` lines.
 * @param capacity maximum number of lines kept; older lines are dropped first.
 */
export function createLineBuffer(capacity: number): LineBuffer {
  return new RingLineBuffer(capacity);
}

class RingLineBuffer implements LineBuffer {
  readonly #capacity: number;
  readonly #ring: string[] = [];
  #start = 0;
  #partial = "";
  readonly #listeners = new Set<(line: string) => void>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("capacity must be a positive integer");
    this.#capacity = capacity;
  }

  push(chunk: Buffer | string): void {
    const text = this.#partial + (typeof chunk === "string" ? chunk : chunk.toString("utf8"));
    const parts = text.split("\n");
    this.#partial = parts.pop() ?? "";
    for (const part of parts) this.#store(part.endsWith("\r") ? part.slice(0, -1) : part);
  }

  flush(): void {
    if (this.#partial === "") return;
    const line = this.#partial;
    this.#partial = "";
    this.#store(line);
  }

  lines(): string[] {
    return [...this.#ring.slice(this.#start), ...this.#ring.slice(0, this.#start)];
  }

  onLine(listener: (line: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #store(line: string): void {
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(line);
    } else {
      this.#ring[this.#start] = line;
      this.#start = (this.#start + 1) % this.#capacity;
    }
    for (const listener of [...this.#listeners]) listener(line);
  }
}
