import { describe, expect, it } from "vitest";
import { consumerContractIssues, type ProducerSchema, writtenSchema } from "./consumer-contracts.ts";
import { readManifests } from "./read.mjs";
import { servicesDir } from "./catalog.ts";

const manifests = readManifests(servicesDir);

describe("consumer-driven contracts", () => {
  it("catalog - every producer's current schema provides every field every consumer declares it reads", () => {
    expect(consumerContractIssues(manifests)).toEqual([]);
    // every stage that consumes declares something
    for (const m of manifests)
      for (const input of m.inputs ?? []) expect(Object.keys(input.reads ?? {}), m.name).toEqual(input.types);
  });

  it("catalog - a producer that drops, renames, loosens or retypes a field a consumer reads fails", () => {
    const scored = writtenSchema("transfers.scored") as Required<ProducerSchema>;
    const { decision: _dropped, ...rest } = scored.properties;
    const variants: Record<string, ProducerSchema> = {
      dropped: { ...scored, properties: rest, required: scored.required.filter((f) => f !== "decision") },
      optional: { ...scored, required: scored.required.filter((f) => f !== "decision") },
      retyped: { ...scored, properties: { ...scored.properties, decision: { type: "integer" } } },
    };
    const issues = (s: ProducerSchema) =>
      consumerContractIssues(manifests, (t) => (t === "transfers.scored" ? s : writtenSchema(t)));
    expect(issues(variants.dropped!)).toEqual([
      "gateway reads transfers.scored /decision: the producer's schema has no such field",
      "ledger reads transfers.scored /decision: the producer's schema has no such field",
    ]);
    expect(issues(variants.optional!)).toContain(
      "ledger reads transfers.scored /decision: is optional in the producer's schema",
    );
    expect(issues(variants.retyped!)).toContain(
      'ledger reads transfers.scored /decision: is "integer" in the producer\'s schema, read as "string"',
    );
  });

  it("catalog - a consumer that declares no reads, or reads an unknown event, is named", () => {
    const m = { name: "demo", inputs: [{ stream: "RISK", durable: "demo", types: ["transfers.scored"] }] };
    expect(consumerContractIssues([m] as never)).toEqual([
      "demo inputs[0] transfers.scored: declares no reads",
    ]);
    const odd = { ...m, inputs: [{ ...m.inputs[0], types: [], reads: { "nope.nope": { a: "string" } } }] };
    expect(consumerContractIssues([odd] as never)).toEqual(["demo reads nope.nope: no such event type"]);
  });
});
