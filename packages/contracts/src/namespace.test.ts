import { describe, expect, it } from "vitest";
import { ContractError } from "./errors.ts";
import { namesFor, namespaceProblem } from "./namespace.ts";
import { StreamNames, Streams } from "./streams.ts";
import { subjectFor } from "./subjects.ts";

describe("namespace", () => {
  it("namespace - none is production's: every name exactly the contracts' own", () => {
    for (const n of [namesFor(), namesFor("")]) {
      expect(n.streams).toBe(Streams);
      expect(n.stream("INGRESS")).toBe("INGRESS");
      expect(n.subject("dlq.risk")).toBe("dlq.risk");
      expect(n.bucket("jetmesh-positions")).toBe("jetmesh-positions");
      expect(n.redisPrefix).toBe("");
      expect(n.streamOf("LEDGER")).toBe("LEDGER");
      // Another namespace's stream is not production's.
      expect(n.streamOf("alice_LEDGER")).toBeUndefined();
    }
  });

  it("namespace - alice prefixes streams, subjects, buckets and Redis keys, and reads them back", () => {
    const n = namesFor("alice");
    expect(n.stream(StreamNames.Ingress)).toBe("alice_INGRESS");
    expect(n.streams.INGRESS.name).toBe("alice_INGRESS");
    expect(n.streams.INGRESS.subjects).toEqual(["alice.transfers.requested.*"]);
    expect(n.streams.DLQ.subjects).toEqual(["alice.dlq.>"]);
    // Everything but the names is the definition's.
    expect({ ...n.streams.LEDGER, name: "LEDGER", subjects: Streams.LEDGER.subjects }).toEqual(
      Streams.LEDGER,
    );
    const subject = subjectFor("ledger.posted", "acc-1");
    expect(n.subject(subject)).toBe(`alice.${subject}`);
    expect(n.local(n.subject(subject))).toBe(subject);
    expect(n.bucket("ledger-snapshots")).toBe("alice_ledger-snapshots");
    expect(n.redisPrefix).toBe("alice:");
    expect(n.streamOf("alice_RISK")).toBe("RISK");
    expect(n.streamOf("RISK")).toBeUndefined();
    expect(n.streamOf("bob_RISK")).toBeUndefined();
  });

  it("namespace - two namespaces' streams never share a subject (JetStream refuses overlaps)", () => {
    const a = Object.values(namesFor("a").streams).flatMap((d) => d.subjects);
    const b = Object.values(namesFor("b").streams).flatMap((d) => d.subjects);
    const prod = Object.values(Streams).flatMap((d) => d.subjects);
    for (const s of a) {
      expect(b).not.toContain(s);
      expect(prod).not.toContain(s);
      // A filter of one matches no subject of the other: the first token differs.
      expect(s.split(".")[0]).toBe("a");
    }
  });

  it("namespace - a value that cannot prefix every kind of name is refused with the rule", () => {
    for (const bad of ["Alice", "a.b", "a_b", "a:b", "a b", "1a", "a-", "-a", "a*", "x".repeat(25)]) {
      expect(namespaceProblem(bad), bad).toMatch(/lower-case letters and digits/);
      expect(() => namesFor(bad)).toThrow(ContractError);
    }
    for (const good of ["a", "alice", "dev-7", "x".repeat(24)])
      expect(namespaceProblem(good), good).toBeUndefined();
  });
});
