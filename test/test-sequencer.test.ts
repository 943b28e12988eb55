import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LONGEST_FIRST } from "../scripts/test-sequencer.ts";

const root = join(import.meta.dirname, "..");

describe("test order", () => {
  it("test order - every file the sequencer starts first exists, once (a renamed file would silently lose its place)", () => {
    expect(LONGEST_FIRST.filter((f) => !existsSync(join(root, f)))).toEqual([]);
    expect(new Set(LONGEST_FIRST).size).toBe(LONGEST_FIRST.length);
  });
});
