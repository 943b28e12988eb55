/**
 * A one-line progress bar on stderr. On a terminal the line is redrawn in place (at most
 * ten times a second); otherwise (CI, a pipe) a plain line is printed every few seconds.
 */
export interface ProgressBar {
  /** Shows `done` of `total` with a label and extra text. */
  update(label: string, done: number, total: number, extra?: string): void;
  /** Prints a line of its own above the bar. */
  log(line: string): void;
  /** Ends the bar's line. */
  done(): void;
}

export function createProgressBar(
  opts: { enabled?: boolean; stream?: NodeJS.WriteStream } = {},
): ProgressBar {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? true;
  const tty = stream.isTTY === true;
  let lastDraw = 0;
  let drawn = false;
  const width = 30;
  const clear = () => {
    if (tty && drawn) stream.write("\r\x1b[2K");
    drawn = false;
  };
  return {
    update(label, done, total, extra = "") {
      if (!enabled) return;
      const now = Date.now();
      const final = done >= total;
      if (!final && now - lastDraw < (tty ? 100 : 3000)) return;
      lastDraw = now;
      const share = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(share * width);
      const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
      const line = `${label.padEnd(9)} [${bar}] ${String(done).padStart(String(total).length)}/${total} ${extra}`;
      if (tty) {
        stream.write(`\r\x1b[2K${line}`);
        drawn = true;
      } else stream.write(`${line}\n`);
    },
    log(line) {
      if (!enabled) return;
      clear();
      stream.write(`${line}\n`);
    },
    done() {
      if (!enabled) return;
      if (tty && drawn) stream.write("\n");
      drawn = false;
    },
  };
}
