import { type TSchema, Type } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import {
  checkCompatibility,
  currentSchemaSet,
  formatViolation,
  type JsonSchema,
  nextReleasedFile,
  type ReleasedFile,
  type SchemaSet,
  type SchemaSetEntry,
} from "./evolution.ts";
import { DEPRECATION_WINDOW_RELEASES, EventContracts, type EventType } from "./schemas.ts";
import { streamOf } from "./streams.ts";

const json = (s: TSchema): JsonSchema => JSON.parse(JSON.stringify(s)) as JsonSchema;
const core = { id: Type.String({ minLength: 1 }), amount: Type.Integer() };
const v1 = json(Type.Object(core, { additionalProperties: false }));
const v2 = json(
  Type.Object({ ...core, note: Type.Optional(Type.String()) }, { additionalProperties: false }),
);
const v3 = json(
  Type.Object(
    { ...core, note: Type.Optional(Type.String()), tag: Type.Optional(Type.String()) },
    { additionalProperties: false },
  ),
);

const demo = (over: Partial<SchemaSetEntry> = {}): SchemaSet => ({
  types: {
    "demo.event": { mode: "full", writes: 3, owner: "demo-team", versions: { 1: v1, 2: v2, 3: v3 }, ...over },
  },
});
const lines = (released: SchemaSet, current: SchemaSet) =>
  checkCompatibility(released, current).map(formatViolation);
/** The tree without v1. */
const withoutV1 = demo({ versions: { 2: v2, 3: v3 } });

/** Releases `set` `n` times after `from`, as `pnpm contracts:release` would. */
function release(set: SchemaSet, n: number, from?: ReleasedFile): ReleasedFile {
  let r = from;
  for (let i = 0; i < n; i++) r = nextReleasedFile(`r${(r?.releases?.length ?? 0) + 1}`, set, r);
  return r as ReleasedFile;
}

describe("contracts governance", () => {
  it("governance - every event type names its owning team: its stream's owner", () => {
    const set = currentSchemaSet();
    for (const [type, entry] of Object.entries(set.types)) {
      expect(entry.owner, type).toBeTruthy();
      expect(entry.owner).toBe(streamOf(type as EventType).owner);
    }
    expect(lines(demo(), demo({ owner: undefined }))).toEqual([
      "demo.event@3 /: no owning team: the stream storing it must name its owner",
    ]);
  });

  it("governance - a released version is never removed without a deprecation", () => {
    expect(lines(release(demo(), 3), withoutV1)).toEqual([
      `demo.event@1 /: released version removed: old events must stay readable; mark it deprecated (EventContracts.deprecated) and release it that way ${DEPRECATION_WINDOW_RELEASES} times first`,
    ]);
  });

  it("governance - a deprecated version is removed only after the dual-publish window", () => {
    const announced = demo({ deprecated: [1] });
    const once = release(announced, 1, release(demo(), 1));
    expect(once.types["demo.event"]?.deprecatedSince).toEqual({ 1: "r2" });
    expect(lines(once, withoutV1)).toEqual([
      "demo.event@1 /: released version removed: deprecated in release r2, released deprecated 1 time(s); the policy asks 2",
    ]);
    const twice = release(announced, 1, once);
    expect(twice.releases).toEqual(["r1", "r2", "r3"]);
    expect(twice.types["demo.event"]?.deprecatedSince).toEqual({ 1: "r2" });
    expect(lines(twice, withoutV1)).toEqual([]);
  });

  it("governance - an event type is removed only after it was announced and its dual-publish window passed", () => {
    const gone: SchemaSet = { types: {} };
    expect(lines(release(demo(), 3), gone)).toEqual([
      `demo.event@3 /: released event type removed: old events must stay readable; mark it deprecated (EventContracts.typeDeprecated) and release it that way ${DEPRECATION_WINDOW_RELEASES} times first`,
    ]);
    const announced = demo({ typeDeprecated: true });
    const once = release(announced, 1, release(demo(), 1));
    expect(once.types["demo.event"]?.typeDeprecatedSince).toBe("r2");
    expect(lines(once, gone)).toEqual([
      "demo.event@3 /: released event type removed: deprecated in release r2, released deprecated 1 time(s); the policy asks 2",
    ]);
    const twice = release(announced, 1, once);
    expect(twice.types["demo.event"]?.typeDeprecatedSince).toBe("r2");
    expect(lines(twice, gone)).toEqual([]);
    // Taken back before removal: the window starts again at the next announcement.
    const back = release(demo(), 1, twice);
    expect(back.types["demo.event"]?.typeDeprecatedSince).toBeUndefined();
    expect(lines(back, gone)).toHaveLength(1);
  });

  it("governance - a header mirror of an envelope field (Jetmesh-Client-Id for actor) ends only after its dual-publish window", () => {
    const tree = currentSchemaSet();
    const envelope = tree.envelope as SchemaSetEntry;
    expect(envelope.headerMirrors).toEqual({ actor: "Jetmesh-Client-Id" });
    const withoutMirror: SchemaSet = { ...tree, envelope: { ...envelope, headerMirrors: {} } };
    const r1 = release(tree, 1);
    expect(r1.envelope?.headerMirrorsSince).toEqual({ actor: "r1" });
    expect(lines(r1, withoutMirror)).toEqual([
      "envelope@2 /actor: header mirror Jetmesh-Client-Id removed before its dual-publish window ended (readers of older builds take the field from it): deprecated in release r1, released deprecated 1 time(s); the policy asks 2",
    ]);
    const r2 = release(tree, 1, r1);
    expect(r2.envelope?.headerMirrorsSince).toEqual({ actor: "r1" });
    expect(lines(r2, withoutMirror)).toEqual([]);
    expect(lines(r1, tree)).toEqual([]);
  });

  it("governance - versions go oldest first; a deprecated version is never the written or the newest one", () => {
    const twice = release(demo({ deprecated: [2] }), 2);
    expect(lines(twice, demo({ versions: { 1: v1, 3: v3 }, deprecated: [] }))).toEqual([
      "demo.event@2 /: released version removed: v1 is older and not deprecated: versions are removed oldest first",
      "demo.event@2 /: version missing: versions are numbered 1 to 3",
    ]);
    expect(lines(demo(), demo({ writes: 2, deprecated: [2, 3] }))).toEqual([
      "demo.event@2 /: producers write a deprecated version: switch them to its successor before announcing it",
      "demo.event@3 /: the highest version cannot be deprecated: readers see its shape",
    ]);
  });

  it("governance - an undeprecated version leaves the released marks; the tree deprecates nothing today", () => {
    const once = release(demo({ deprecated: [1] }), 1);
    expect(release(demo(), 1, once).types["demo.event"]?.deprecatedSince).toBeUndefined();
    for (const [type, c] of Object.entries(EventContracts)) {
      expect(c.deprecated ?? [], type).toEqual([]);
      expect(c.typeDeprecated ?? false, type).toBe(false);
    }
  });
});
