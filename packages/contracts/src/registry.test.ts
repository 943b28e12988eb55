import { type TSchema, Type } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import {
  contractNeeds,
  type JsonSchema,
  type RegistryView,
  registryDocuments,
  registryIssues,
  type SchemaSet,
  type SchemaSetEntry,
} from "./evolution.ts";

const json = (s: TSchema): JsonSchema => JSON.parse(JSON.stringify(s)) as JsonSchema;
const v1 = json(Type.Object({ id: Type.String(), amount: Type.Integer() }, { additionalProperties: false }));
const v2 = json(
  Type.Object(
    { id: Type.String(), amount: Type.Integer(), note: Type.Optional(Type.String()) },
    { additionalProperties: false },
  ),
);
const v2NoAmount = json(Type.Object({ id: Type.String() }, { additionalProperties: false }));

const set = (entry: Partial<SchemaSetEntry>, more: SchemaSet["types"] = {}): SchemaSet => ({
  types: { "demo.event": { mode: "full", writes: 1, owner: "demo", versions: { 1: v1 }, ...entry }, ...more },
});
/** The registry a deploy of `deployed` (with release `released`) publishes, as a service reads it. */
function view(deployed: SchemaSet, released: SchemaSet): RegistryView {
  const docs = registryDocuments(deployed, { release: "r1", ...released });
  return {
    index: docs.get("index") as RegistryView["index"],
    schema: (type, v) => docs.get(`schema.${type}.v${v}`) as JsonSchema | undefined,
  };
}
const consumer = (build: SchemaSet) => contractNeeds(build, ["demo.event"], []);
const producer = (build: SchemaSet) => contractNeeds(build, [], ["demo.event"]);

describe("contracts schema registry rules", () => {
  it("registry - a consumer reads a newer version that only adds optional fields; not one that drops a field", () => {
    const deployed = set({ writes: 2, versions: { 1: v1, 2: v2 } });
    expect(registryIssues(consumer(set({})), view(deployed, deployed))).toEqual([]);
    const dropping = set({ writes: 2, versions: { 1: v1, 2: v2NoAmount } });
    expect(registryIssues(consumer(set({})), view(dropping, dropping))).toEqual([
      "consumes demo.event@2 /amount: this build reads it as v1, and forward: required field removed (readers of the previous version may rely on it) (owner: demo)",
    ]);
  });

  it("registry - a backward-only type is never read tolerantly", () => {
    const deployed = set({ mode: "backward", writes: 2, versions: { 1: v1, 2: v2 } });
    expect(registryIssues(consumer(set({ mode: "backward" })), view(deployed, deployed))).toEqual([
      "consumes demo.event@2 /: producers write v2 per the registry, this build reads up to v1 and demo.event is backward-only (no tolerant read): deploy a build that reads v2",
    ]);
  });

  it("registry - a version both know must be the same schema", () => {
    const deployed = set({ versions: { 1: v2 } });
    expect(registryIssues(consumer(set({})), view(deployed, deployed))).toEqual([
      "consumes demo.event@1 /note: the registry's schema differs from this build's (released versions never change; rebuild against the released contracts)",
    ]);
  });

  it("registry - a producer writes only released versions, except the first versions of a type no release shipped", () => {
    const build = set({ writes: 2, versions: { 1: v1, 2: v2 } });
    expect(registryIssues(producer(build), view(build, set({})))).toEqual([
      "produces demo.event@2 /: v2 is not released in the registry (released: v1, release r1): release it and deploy its consumers before its producers",
    ]);
    expect(registryIssues(producer(build), view(build, build))).toEqual([]);
    expect(registryIssues(producer(set({})), view(set({}), { types: {} }))).toEqual([]);
    expect(registryIssues(producer(set({})), view({ types: {} }, { types: {} }))).toEqual([
      "produces demo.event@1 /: the registry does not know demo.event: run the deploy step (pnpm contracts:publish) before starting its producers",
    ]);
  });

  it("registry - the envelope's versions are published; a producer writes only an envelope version the registry holds", () => {
    const env1 = json(Type.Object({ eventId: Type.String() }, { additionalProperties: false }));
    const env2 = json(
      Type.Object(
        { eventId: Type.String(), actor: Type.Optional(Type.String()) },
        { additionalProperties: false },
      ),
    );
    const envelope = (writes: number, versions: Record<string, JsonSchema>): SchemaSetEntry => ({
      mode: "full",
      writes,
      owner: "platform",
      versions,
    });
    const build: SchemaSet = { ...set({}), envelope: envelope(2, { 1: env1, 2: env2 }) };
    const docs = registryDocuments(build, { release: "r1", ...set({}) });
    expect(docs.get("schema.envelope.v2")).toEqual(env2);
    expect((docs.get("index") as RegistryView["index"]).envelope).toEqual({
      mode: "full",
      writes: 2,
      versions: [1, 2],
      released: [],
      owner: "platform",
    });
    // No release has shipped the envelope yet: a registry holding v2 lets its writers start.
    expect(registryIssues(producer(build), view(build, set({})))).toEqual([]);
    // A consumer-only service writes no envelope.
    expect(registryIssues(consumer(build), view(set({}), set({})))).toEqual([]);
    expect(registryIssues(producer(build), view(set({}), set({})))).toEqual([
      "produces envelope@2 /: the registry does not know envelope: run the deploy step (pnpm contracts:publish) before starting its producers",
    ]);
    const older: SchemaSet = { ...set({}), envelope: envelope(1, { 1: env1 }) };
    expect(registryIssues(producer(build), view(older, set({})))).toEqual([
      "produces envelope@2 /: the registry holds no v2 (holds: v1): publish a tree that has it (pnpm contracts:publish) before starting its producers",
    ]);
    expect(registryIssues(producer(build), view(older, older))).toEqual([
      "produces envelope@2 /: v2 is not released in the registry (released: v1, release r1): release it and deploy its consumers before its producers",
    ]);
    const changed: SchemaSet = { ...set({}), envelope: envelope(2, { 1: env1, 2: env1 }) };
    expect(registryIssues(producer(build), view(changed, set({})))).toEqual([
      "produces envelope@2 /actor: the registry's schema differs from this build's (released versions never change; rebuild against the released contracts)",
    ]);
  });
});
