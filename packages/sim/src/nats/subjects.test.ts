import { describe, expect, it } from "vitest";
import { subjectMatches, tokensMatch } from "./subjects.ts";

describe("subjects", () => {
  it("subjectMatches - agrees with the token-by-token match on every pair of a generated set", () => {
    const tokens = ["a", "b", "ab", "*", ">", ""];
    const subjects: string[] = [];
    const grow = (prefix: string[], depth: number) => {
      if (prefix.length) subjects.push(prefix.join("."));
      if (depth === 0) return;
      for (const t of tokens) grow([...prefix, t], depth - 1);
    };
    grow([], 3);
    let matches = 0;
    for (const p of subjects)
      for (const s of subjects) {
        const want = tokensMatch(p.split("."), s.split("."));
        if (want) matches++;
        expect(subjectMatches(p, s), `${p} vs ${s}`).toBe(want);
      }
    // Both answers occur: the comparison can fail either way.
    expect(matches).toBeGreaterThan(100);
    expect(matches).toBeLessThan(subjects.length ** 2);
  });

  it("subjectMatches - wildcards as NATS defines them", () => {
    expect(subjectMatches("transfers.>", "transfers.requested.acc-1")).toBe(true);
    expect(subjectMatches("transfers.>", "transfers")).toBe(false);
    expect(subjectMatches("transfers.*", "transfers.requested.acc-1")).toBe(false);
    expect(subjectMatches("$KV.b.*", "$KV.b.k")).toBe(true);
    expect(subjectMatches("a.b", "a.bc")).toBe(false);
  });
});
