import {
  ANNOTATIONS,
  ENVELOPE,
  type JsonSchema,
  type ReleasedFile,
  type SchemaSet,
  type SchemaSetEntry,
} from "./artifacts.ts";
import { type CompatibilityMode, DEPRECATION_WINDOW_RELEASES } from "./schemas.ts";

/** One rule a schema change breaks: the event type, the version, the field and the rule. */
export interface Violation {
  readonly type: string;
  readonly version: number;
  /** JSON pointer into the event's data (`/reference`, `/metadata/*`, `/reasons/[]/field`); `/` for the whole. */
  readonly field: string;
  readonly rule: string;
  /** What to do instead, when the rule alone does not say. */
  readonly hint?: string;
}

/** `transfers.requested@2 /reference: backward: required field added (...)`. */
export function formatViolation(v: Violation): string {
  return `${v.type}@${v.version} ${v.field}: ${v.rule}${v.hint ? `: ${v.hint}` : ""}`;
}

type Direction = "backward" | "forward";
const DIRECTIONS: Readonly<Record<CompatibilityMode, readonly Direction[]>> = {
  backward: ["backward"],
  forward: ["forward"],
  full: ["backward", "forward"],
};

interface Issue {
  readonly field: string;
  readonly rule: string;
}

/**
 * Compares the working tree's schema set with the last released one. Fails (returns a
 * violation) when:
 * - a released event type or version is gone (old events must stay readable forever), or a
 *   released version's schema changed (released versions are immutable: add a version);
 * - a type's mode is weaker than it was released with;
 * - versions are not numbered 1..N;
 * - a new version breaks its type's mode against the version before it (rules below);
 * - producers would write a version no release has taught readers yet: a version is
 *   registered and released before any producer writes it (README, "Rollout order").
 *
 * Modes as Confluent's schema registry defines them, for readers that ignore properties they
 * do not know: `backward` = a reader of the new version reads data of the previous one,
 * `forward` = a reader of the previous version reads data of the new one, `full` = both.
 */
export function checkCompatibility(released: SchemaSet | ReleasedFile, current: SchemaSet): Violation[] {
  const out: Violation[] = [];
  const history = "release" in released ? (released.releases ?? [released.release]) : [];
  // The envelope is gated like a type (`envelope@<N>`); a snapshot from before it was
  // versioned has none, and its versions are then checked against each other as new.
  const releasedTypes = withEnvelope(released);
  const currentTypes = withEnvelope(current);
  for (const [type, rel] of Object.entries(releasedTypes)) {
    const cur = currentTypes[type];
    const relTop = topVersion(rel);
    if (!cur) {
      const refused = typeRemovalRefused(rel, history);
      if (refused)
        out.push({ type, version: relTop, field: "/", rule: "released event type removed", hint: refused });
      continue;
    }
    for (const [v, schema] of Object.entries(rel.versions)) {
      const now = cur.versions[v];
      if (!now) {
        const refused = removalRefused(rel, v, history);
        if (refused)
          out.push({ type, version: Number(v), field: "/", rule: "released version removed", hint: refused });
        continue;
      }
      const at = firstDifference(schema, now, "");
      if (at !== undefined)
        out.push({
          type,
          version: Number(v),
          field: at || "/",
          rule: "released version changed: released versions are immutable, add a version instead",
        });
    }
    for (const [field, header] of Object.entries(rel.headerMirrors ?? {})) {
      if (cur.headerMirrors?.[field] === header) continue;
      // A mirror is deprecated from the first release that ships it: it exists to be removed.
      const since = rel.headerMirrorsSince?.[field] ?? ("release" in released ? released.release : undefined);
      const refused = windowRefused(since, history, "EnvelopeContract.headerMirrors");
      if (refused)
        out.push({
          type,
          version: topVersion(cur),
          field: `/${field}`,
          rule: `header mirror ${header} removed before its dual-publish window ended (readers of older builds take the field from it)`,
          hint: refused,
        });
    }
    for (const d of DIRECTIONS[rel.mode])
      if (!DIRECTIONS[cur.mode].includes(d))
        out.push({
          type,
          version: topVersion(cur),
          field: "/",
          rule: `mode weakened from ${rel.mode} to ${cur.mode}`,
        });
    if (cur.writes > relTop)
      out.push({
        type,
        version: cur.writes,
        field: "/",
        rule: `producers write v${cur.writes} before a release taught readers it (last released v${relTop}): release v${cur.writes} with producers on v${rel.writes}, then switch them`,
      });
  }
  for (const [type, cur] of Object.entries(currentTypes)) {
    const rel = releasedTypes[type];
    const top = topVersion(cur);
    // Versions run without a gap from the lowest still registered (1, or above it once the
    // oldest were removed after their deprecation window).
    const low = Math.min(top, ...Object.keys(cur.versions).map(Number));
    for (let v = low; v <= top; v++) {
      if (!cur.versions[String(v)]) {
        out.push({
          type,
          version: v,
          field: "/",
          rule: `version missing: versions are numbered ${low} to ${top}`,
        });
        continue;
      }
      if (v === low || rel?.versions[String(v)]) continue;
      const previous = cur.versions[String(v - 1)];
      if (previous)
        out.push(...checkVersion(type, v, cur.mode, previous, cur.versions[String(v)] as JsonSchema));
    }
    if (!cur.versions[String(cur.writes)])
      out.push({
        type,
        version: cur.writes,
        field: "/",
        rule: "producers write a version that is not registered",
      });
    out.push(...governanceIssues(type, cur, rel));
  }
  return out;
}

/** A set's entries, the envelope's under {@link ENVELOPE}. */
function withEnvelope(set: SchemaSet): Readonly<Record<string, SchemaSetEntry>> {
  return set.envelope ? { ...set.types, [ENVELOPE]: set.envelope } : set.types;
}

/** Ownership and deprecation marks of one type in the working tree. */
function governanceIssues(type: string, cur: SchemaSetEntry, rel: SchemaSetEntry | undefined): Violation[] {
  const out: Violation[] = [];
  const top = topVersion(cur);
  // The source derives the owner from the type's stream (streamOf throws for a type no stream
  // stores), so the working tree always has one; artifacts checked with --no-source and
  // snapshots from before ownership was recorded may not: required once a release named one.
  if (!cur.owner && rel?.owner)
    out.push({
      type,
      version: top,
      field: "/",
      rule: "no owning team: the stream storing it must name its owner",
    });
  for (const v of cur.deprecated ?? []) {
    if (!cur.versions[String(v)])
      out.push({ type, version: v, field: "/", rule: "deprecated version is not registered" });
    if (v === cur.writes)
      out.push({
        type,
        version: v,
        field: "/",
        rule: "producers write a deprecated version: switch them to its successor before announcing it",
      });
    if (v === top)
      out.push({
        type,
        version: v,
        field: "/",
        rule: "the highest version cannot be deprecated: readers see its shape",
      });
  }
  return out;
}

/**
 * Why removing released version `v` is refused, or undefined when the deprecation policy
 * allows it: it was released deprecated in at least {@link DEPRECATION_WINDOW_RELEASES}
 * releases (announce, then the dual-publish window) and it is the oldest version.
 */
function removalRefused(rel: SchemaSetEntry, v: string, history: readonly string[]): string | undefined {
  const early = windowRefused(rel.deprecatedSince?.[v], history, "EventContracts.deprecated");
  if (early) return early;
  const older = Object.keys(rel.versions)
    .map(Number)
    .filter((x) => x < Number(v) && !rel.deprecatedSince?.[String(x)]);
  if (older.length) return `v${older[0]} is older and not deprecated: versions are removed oldest first`;
  return undefined;
}

/**
 * Why removing a whole released type is refused, or undefined when the deprecation policy
 * allows it: the type was announced (`typeDeprecated`) and released that way in at least
 * {@link DEPRECATION_WINDOW_RELEASES} releases (the dual-publish window, during which its
 * consumers move to what replaces it).
 */
function typeRemovalRefused(rel: SchemaSetEntry, history: readonly string[]): string | undefined {
  return windowRefused(rel.typeDeprecatedSince, history, "EventContracts.typeDeprecated");
}

/** Why a deprecation that started in release `since` has not run its window yet (undefined: it has). */
function windowRefused(
  since: string | undefined,
  history: readonly string[],
  mark: string,
): string | undefined {
  if (!since)
    return `old events must stay readable; mark it deprecated (${mark}) and release it that way ${DEPRECATION_WINDOW_RELEASES} times first`;
  const at = history.indexOf(since);
  const shipped = at < 0 ? 1 : history.length - at;
  if (shipped < DEPRECATION_WINDOW_RELEASES)
    return `deprecated in release ${since}, released deprecated ${shipped} time(s); the policy asks ${DEPRECATION_WINDOW_RELEASES}`;
  return undefined;
}

/** The violations of `next` (version `version`) against `previous` under `mode`. */
export function checkVersion(
  type: string,
  version: number,
  mode: CompatibilityMode,
  previous: JsonSchema,
  next: JsonSchema,
): Violation[] {
  const out: Violation[] = [];
  for (const d of DIRECTIONS[mode]) {
    // backward: the new version reads the old data; forward: the old version reads the new data.
    const issues =
      d === "backward" ? readerIssues(next, previous, "", d) : readerIssues(previous, next, "", d);
    for (const i of issues) out.push({ type, version, field: i.field || "/", rule: `${d}: ${i.rule}` });
  }
  return out;
}

const topVersion = (e: SchemaSetEntry): number => Math.max(0, ...Object.keys(e.versions).map(Number));

/** Lower bounds: a reader's larger value refuses data the writer allows. */
const LOWER = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"] as const;
/** Upper bounds: a reader's smaller value refuses data the writer allows. */
const UPPER = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"] as const;
/** Keywords a reader's value must equal the writer's for. */
const EXACT = ["pattern", "format", "multipleOf", "uniqueItems"] as const;
/** Keywords handled structurally below. */
const STRUCTURAL = new Set<string>([
  ...LOWER,
  ...UPPER,
  ...EXACT,
  "type",
  "const",
  "enum",
  "anyOf",
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "items",
  ...ANNOTATIONS,
]);

/**
 * What data valid under `writer` may be refused by `reader`, phrased as the change from the
 * old version to the new one (`direction` says which of the two is the reader). Readers
 * ignore properties they do not know, so a property only the writer has is never an issue.
 */
function readerIssues(reader: JsonSchema, writer: JsonSchema, path: string, direction: Direction): Issue[] {
  const out: Issue[] = [];
  const field = path || "/";
  const [oldS, newS] = direction === "backward" ? [writer, reader] : [reader, writer];
  const change = (kw: string) => `${kw} changed from ${show(oldS[kw])} to ${show(newS[kw])}`;

  const rv = enumValues(reader);
  const wv = enumValues(writer);
  if (rv) {
    const refused = wv ? wv.filter((v) => !rv.some((r) => same(r, v))) : undefined;
    if (!refused)
      out.push({
        field,
        rule: `${change(reader.enum ? "enum" : "anyOf")}: readers refuse values outside it`,
      });
    else if (refused.length)
      out.push({
        field,
        rule:
          direction === "backward"
            ? `enum values removed: ${refused.map(show).join(", ")} (events written before are refused)`
            : `enum values added: ${refused.map(show).join(", ")} (readers of the previous version refuse them)`,
      });
    return out;
  }
  if (!typesCover(reader.type, writer.type)) {
    out.push({ field, rule: `type changed from ${show(oldS.type)} to ${show(newS.type)}` });
    return out;
  }
  for (const kw of LOWER) {
    const r = reader[kw];
    const w = writer[kw];
    if (typeof r === "number" && !(typeof w === "number" && w >= r)) out.push({ field, rule: narrowed(kw) });
  }
  for (const kw of UPPER) {
    const r = reader[kw];
    const w = writer[kw];
    if (typeof r === "number" && !(typeof w === "number" && w <= r)) out.push({ field, rule: narrowed(kw) });
  }
  for (const kw of EXACT)
    if (reader[kw] !== undefined && !same(reader[kw], writer[kw])) out.push({ field, rule: change(kw) });
  for (const kw of Object.keys(reader))
    if (!STRUCTURAL.has(kw) && !same(reader[kw], writer[kw])) out.push({ field, rule: change(kw) });
  out.push(...objectIssues(reader, writer, path, direction));
  if (isSchema(reader.items) && isSchema(writer.items))
    out.push(...readerIssues(reader.items, writer.items, `${path}/[]`, direction));
  return out;

  function narrowed(kw: string): string {
    const how = direction === "backward" ? "narrowed" : "widened";
    return `${change(kw)} (${how}: ${direction === "backward" ? "events written before may be refused" : "readers of the previous version may refuse new events"})`;
  }
}

function objectIssues(reader: JsonSchema, writer: JsonSchema, path: string, direction: Direction): Issue[] {
  const out: Issue[] = [];
  const rProps = (reader.properties ?? {}) as Record<string, JsonSchema>;
  const wProps = (writer.properties ?? {}) as Record<string, JsonSchema>;
  const rReq = new Set((reader.required ?? []) as string[]);
  const wReq = new Set((writer.required ?? []) as string[]);
  for (const [name, r] of Object.entries(rProps)) {
    const at = `${path}/${name}`;
    const w = wProps[name];
    if (!w) {
      if (direction === "forward")
        out.push({
          field: at,
          rule: `${rReq.has(name) ? "required " : ""}field removed (readers of the previous version may rely on it)`,
        });
      else if (rReq.has(name))
        out.push({ field: at, rule: "required field added (events written before lack it)" });
      continue;
    }
    if (rReq.has(name) && !wReq.has(name))
      out.push({
        field: at,
        rule:
          direction === "backward"
            ? "field made required (events written before may lack it)"
            : "required field made optional (readers of the previous version require it)",
      });
    out.push(...readerIssues(r, w, at, direction));
  }
  const rPat = (reader.patternProperties ?? {}) as Record<string, JsonSchema>;
  const wPat = (writer.patternProperties ?? {}) as Record<string, JsonSchema>;
  for (const [pattern, r] of Object.entries(rPat)) {
    const w = wPat[pattern];
    if (w) out.push(...readerIssues(r, w, `${path}/*`, direction));
    else
      out.push({
        field: `${path}/*`,
        rule: `key pattern changed from ${show(Object.keys(direction === "backward" ? wPat : rPat))} to ${show(Object.keys(direction === "backward" ? rPat : wPat))}`,
      });
  }
  return out;
}

/** The values a schema allows when it is an enumeration (`const`, `enum`, `anyOf` of consts). */
function enumValues(s: JsonSchema): unknown[] | undefined {
  if ("const" in s) return [s.const];
  if (Array.isArray(s.enum)) return s.enum;
  if (Array.isArray(s.anyOf) && s.anyOf.every((x) => isSchema(x) && "const" in x))
    return (s.anyOf as JsonSchema[]).map((x) => x.const);
  return undefined;
}

/** True when every value of the writer's type(s) is of one of the reader's types. */
function typesCover(reader: unknown, writer: unknown): boolean {
  if (reader === undefined) return true;
  if (writer === undefined) return false;
  const r = new Set([reader].flat() as string[]);
  return ([writer].flat() as string[]).every((t) => r.has(t) || (t === "integer" && r.has("number")));
}

const isSchema = (x: unknown): x is JsonSchema => typeof x === "object" && x !== null && !Array.isArray(x);
const show = (x: unknown): string => (x === undefined ? "none" : JSON.stringify(x));

function same(a: unknown, b: unknown): boolean {
  return firstDifference(a, b, "") === undefined;
}

/** The JSON pointer of the first place `a` and `b` differ (annotations aside); undefined when equal. */
export function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return path;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], path);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (isSchema(a) && isSchema(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => !ANNOTATIONS.has(k)));
    for (const k of keys) {
      const sub =
        k === "properties" || k === "patternProperties" ? path : k === "items" ? `${path}/[]` : path;
      if (k === "properties" || k === "patternProperties") {
        const ak = (a[k] ?? {}) as Record<string, unknown>;
        const bk = (b[k] ?? {}) as Record<string, unknown>;
        for (const name of new Set([...Object.keys(ak), ...Object.keys(bk)])) {
          const d = firstDifference(ak[name], bk[name], k === "properties" ? `${sub}/${name}` : `${sub}/*`);
          if (d !== undefined) return d;
        }
        continue;
      }
      const d = firstDifference(a[k], b[k], sub);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return a === b ? undefined : path;
}
