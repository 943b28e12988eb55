import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { Payout, Refusal } from "./records.ts";

/** One decision as written to the state file: one JSON line, appended before its answer is sent. */
export interface StateLine {
  readonly key: string;
  readonly answer: {
    readonly fingerprint: string;
    readonly status: number;
    readonly body: Readonly<Record<string, unknown>>;
  };
  /** ISO time of the decision; retention counts from it. Lines written before the field existed lack it. */
  readonly decidedAt?: string;
  readonly payout?: Payout;
  readonly refusal?: Refusal;
}

/** Appends one decision synchronously, so it is on disk before the answer leaves the process. */
export function appendStateLine(file: string, line: StateLine): void {
  appendFileSync(file, `${JSON.stringify(line)}\n`);
}

/** Every decision in the file, oldest first; a key decided again after being forgotten has several. */
export function loadStateLines(file: string): StateLine[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, "utf8");
  // A crash mid-append leaves a torn last line; end it so the next append starts clean.
  if (text.length > 0 && !text.endsWith("\n")) appendFileSync(file, "\n");
  const lines: StateLine[] = [];
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    try {
      lines.push(JSON.parse(raw) as StateLine);
    } catch {
      // the torn line: its answer never left the process, so forgetting it is safe
    }
  }
  return lines;
}
