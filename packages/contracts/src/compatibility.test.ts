import { type TSchema, Type } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import {
  checkCompatibility,
  checkVersion,
  currentSchemaSet,
  type JsonSchema,
  renderSchemaArtifacts,
  type SchemaSet,
  schemaSetFromArtifacts,
} from "./evolution.ts";
import type { CompatibilityMode } from "./schemas.ts";

const json = (s: TSchema): JsonSchema => JSON.parse(JSON.stringify(s)) as JsonSchema;
const Status = (...values: string[]) => Type.Union(values.map((v) => Type.Literal(v)));
const base = {
  id: Type.String({ minLength: 1, maxLength: 64 }),
  amount: Type.Integer(),
  status: Status("ok", "late"),
  note: Type.Optional(Type.String({ maxLength: 100 })),
};
const v1 = json(Type.Object(base, { additionalProperties: false }));
const v2 = (props: Record<string, TSchema>, drop: string[] = []) => {
  const p: Record<string, TSchema> = { ...base, ...props };
  for (const d of drop) delete p[d];
  return json(Type.Object(p, { additionalProperties: false }));
};
const rules = (mode: CompatibilityMode, next: JsonSchema) =>
  checkVersion("demo.event", 2, mode, v1, next).map((v) => `${v.field} ${v.rule}`);

describe("contracts compatibility rules", () => {
  it("contracts - adding an optional field is compatible in every mode", () => {
    const next = v2({ reference: Type.Optional(Type.String({ maxLength: 10 })) });
    for (const mode of ["backward", "forward", "full"] as const) expect(rules(mode, next)).toEqual([]);
  });

  it("contracts - adding a required field breaks backward, not forward", () => {
    const next = v2({ reference: Type.String() });
    expect(rules("backward", next)).toEqual([
      "/reference backward: required field added (events written before lack it)",
    ]);
    expect(rules("forward", next)).toEqual([]);
    expect(rules("full", next)).toHaveLength(1);
  });

  it("contracts - removing a field breaks forward, not backward", () => {
    expect(rules("backward", v2({}, ["note"]))).toEqual([]);
    expect(rules("forward", v2({}, ["note"]))).toEqual([
      "/note forward: field removed (readers of the previous version may rely on it)",
    ]);
    expect(rules("forward", v2({}, ["amount"]))).toEqual([
      "/amount forward: required field removed (readers of the previous version may rely on it)",
    ]);
  });

  it("contracts - changing a field's type breaks both directions; integer to number breaks only forward", () => {
    expect(rules("full", v2({ amount: Type.String() }))).toEqual([
      '/amount backward: type changed from "integer" to "string"',
      '/amount forward: type changed from "integer" to "string"',
    ]);
    expect(rules("backward", v2({ amount: Type.Number() }))).toEqual([]);
    expect(rules("forward", v2({ amount: Type.Number() }))).toEqual([
      '/amount forward: type changed from "integer" to "number"',
    ]);
  });

  it("contracts - narrowing an enum breaks backward, widening it breaks forward", () => {
    expect(rules("full", v2({ status: Status("ok") }))).toEqual([
      '/status backward: enum values removed: "late" (events written before are refused)',
    ]);
    expect(rules("full", v2({ status: Status("ok", "late", "lost") }))).toEqual([
      '/status forward: enum values added: "lost" (readers of the previous version refuse them)',
    ]);
  });

  it("contracts - tightening a bound breaks backward, loosening it breaks forward", () => {
    expect(rules("full", v2({ id: Type.String({ minLength: 1, maxLength: 32 }) }))).toEqual([
      "/id backward: maxLength changed from 64 to 32 (narrowed: events written before may be refused)",
    ]);
    expect(rules("full", v2({ note: Type.Optional(Type.String({ maxLength: 200 })) }))).toEqual([
      "/note forward: maxLength changed from 100 to 200 (widened: readers of the previous version may refuse new events)",
    ]);
  });

  it("contracts - making a field required or optional breaks the matching direction", () => {
    expect(rules("full", v2({ note: Type.String({ maxLength: 100 }) }))).toEqual([
      "/note backward: field made required (events written before may lack it)",
    ]);
    expect(rules("full", v2({ amount: Type.Optional(Type.Integer()) }))).toEqual([
      "/amount forward: required field made optional (readers of the previous version require it)",
    ]);
  });

  it("contracts - nested objects, arrays and maps are compared field by field", () => {
    const item = (max: number) => Type.Object({ code: Type.String({ maxLength: max }) });
    const withItems = (max: number) =>
      json(Type.Object({ items: Type.Array(item(max)), tags: Type.Record(Type.String(), Type.Integer()) }));
    const withTags = json(
      Type.Object({ items: Type.Array(item(8)), tags: Type.Record(Type.String(), Type.String()) }),
    );
    expect(checkVersion("demo.event", 2, "backward", withItems(8), withItems(4)).map((v) => v.field)).toEqual(
      ["/items/[]/code"],
    );
    expect(checkVersion("demo.event", 2, "full", withItems(8), withTags).map((v) => v.field)).toEqual([
      "/tags/*",
      "/tags/*",
    ]);
  });
});

describe("contracts compatibility gate", () => {
  const set = (
    versions: Record<string, JsonSchema>,
    writes = 1,
    mode: CompatibilityMode = "full",
  ): SchemaSet => ({
    types: { "demo.event": { mode, writes, versions } },
  });

  it("contracts - a new compatible version passes; a released version is immutable and never removed", () => {
    const released = set({ "1": v1 });
    expect(
      checkCompatibility(released, set({ "1": v1, "2": v2({ ref: Type.Optional(Type.String()) }) })),
    ).toEqual([]);
    expect(checkCompatibility(released, set({ "1": v2({ ref: Type.Optional(Type.String()) }) }))).toEqual([
      {
        type: "demo.event",
        version: 1,
        field: "/ref",
        rule: "released version changed: released versions are immutable, add a version instead",
      },
    ]);
    expect(checkCompatibility(released, { types: {} })).toMatchObject([
      { rule: "released event type removed" },
    ]);
    expect(checkCompatibility(set({ "1": v1, "2": v1 }), set({ "1": v1 }))).toMatchObject([
      { version: 2, rule: "released version removed" },
    ]);
  });

  it("contracts - producers may not write a version before a release taught readers it", () => {
    const next = v2({ ref: Type.Optional(Type.String()) });
    const [v] = checkCompatibility(set({ "1": v1 }), set({ "1": v1, "2": next }, 2));
    expect(v).toMatchObject({ type: "demo.event", version: 2, field: "/" });
    expect(v?.rule).toMatch(/^producers write v2 before a release taught readers it/);
    expect(checkCompatibility(set({ "1": v1, "2": next }), set({ "1": v1, "2": next }, 2))).toEqual([]);
  });

  it("contracts - a weaker mode, a version gap and an unregistered write version are refused", () => {
    expect(checkCompatibility(set({ "1": v1 }), set({ "1": v1 }, 1, "backward"))).toMatchObject([
      { rule: "mode weakened from full to backward" },
    ]);
    expect(checkCompatibility({ types: {} }, set({ "1": v1, "3": v1 }))).toMatchObject([
      { version: 2, rule: "version missing: versions are numbered 1 to 3" },
    ]);
    expect(checkCompatibility({ types: {} }, set({ "1": v1 }, 4))).toMatchObject([
      { version: 4, rule: "producers write a version that is not registered" },
    ]);
  });

  it("contracts - the artifacts read back as the schema set they were rendered from", () => {
    const files = renderSchemaArtifacts();
    const read = schemaSetFromArtifacts((p) => {
      const text = files.get(p);
      if (text === undefined) throw new Error("missing");
      return text;
    });
    expect(read).toEqual(currentSchemaSet());
    expect([...files.keys()]).toContain("transfers.requested/v2.json");
    expect([...files.keys()]).toContain("envelope/v2.json");
  });

  it("contracts - the envelope is gated like an event type: its versions keep the mode and a released one never changes", () => {
    const tree = currentSchemaSet();
    const envelope = tree.envelope;
    if (!envelope) throw new Error("the tree has no envelope entry");
    // v2 (optional actor) against v1, as new, when the last release predates the envelope's versions.
    expect(checkCompatibility({ types: tree.types }, tree)).toEqual([]);
    const v2e = envelope.versions["2"] as { properties: Record<string, unknown>; required: string[] };
    const v3e = {
      ...v2e,
      properties: { ...v2e.properties, tenant: { type: "string" } },
      required: [...v2e.required, "tenant"],
    };
    const withV3 = { ...tree, envelope: { ...envelope, versions: { ...envelope.versions, "3": v3e } } };
    expect(checkCompatibility(tree, withV3)).toEqual([
      {
        type: "envelope",
        version: 3,
        field: "/tenant",
        rule: "backward: required field added (events written before lack it)",
      },
    ]);
    const edited = { ...tree, envelope: { ...envelope, versions: { ...envelope.versions, "2": v3e } } };
    expect(checkCompatibility(tree, edited)).toMatchObject([
      {
        type: "envelope",
        version: 2,
        field: "/",
        rule: expect.stringMatching(/^released version changed/),
      },
    ]);
  });
});
