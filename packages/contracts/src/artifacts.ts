import { EnvelopeContract } from "./envelope.ts";
import { type CompatibilityMode, EventContracts, type EventType, SchemaRegistry } from "./schemas.ts";
import { streamOf } from "./streams.ts";

/** A JSON Schema as plain data (what the artifacts hold; TypeBox's symbols dropped). */
export type JsonSchema = { readonly [key: string]: unknown };

/** One event type's versions and what it declares, as data. */
export interface SchemaSetEntry {
  readonly mode: CompatibilityMode;
  /** The version producers write. */
  readonly writes: number;
  /** Version number (as a string key) → its JSON Schema. */
  readonly versions: Readonly<Record<string, JsonSchema>>;
  /** The owning team: the owner of the stream that stores the type. */
  readonly owner?: string;
  /** Versions announced deprecated (still read, never written). */
  readonly deprecated?: readonly number[];
  /**
   * In a released snapshot: each deprecated version → the first release that shipped it
   * deprecated (the deprecation window counts releases from there).
   */
  readonly deprecatedSince?: Readonly<Record<string, string>>;
  /** The whole type announced deprecated (removable after the window, like a version). */
  readonly typeDeprecated?: boolean;
  /** In a released snapshot: the first release that shipped the type deprecated. */
  readonly typeDeprecatedSince?: string;
  /**
   * The envelope's only: fields producers also write as a header (field → header), each in
   * its dual-publish window (a mirror exists only to be removed).
   */
  readonly headerMirrors?: Readonly<Record<string, string>>;
  /** In a released snapshot: each header mirror → the first release that shipped it. */
  readonly headerMirrorsSince?: Readonly<Record<string, string>>;
}

/**
 * Every event type's schemas: what the working tree defines ({@link currentSchemaSet}), what
 * the last release shipped (`schemas/released.json`), or a fixture. The compatibility gate
 * compares two of them.
 */
export interface SchemaSet {
  readonly types: Readonly<Record<string, SchemaSetEntry>>;
  /**
   * The envelope's versions ({@link ENVELOPE}), gated like a type's; absent in snapshots
   * taken before the envelope was versioned.
   */
  readonly envelope?: SchemaSetEntry;
}

/** The envelope's name in the gate's messages and its artifacts' folder (`envelope/v<N>.json`). */
export const ENVELOPE = "envelope";

/** The released snapshot's file: a schema set and the release it was taken at. */
export interface ReleasedFile extends SchemaSet {
  readonly release: string;
  /** Every release so far, oldest first, ending with `release` (absent in older snapshots: just `release`). */
  readonly releases?: readonly string[];
}

/** Keywords that describe a schema without constraining it: never a difference. */
export const ANNOTATIONS: ReadonlySet<string> = new Set([
  "$schema",
  "$id",
  "title",
  "description",
  "$comment",
]);
const DRAFT = "http://json-schema.org/draft-07/schema#";

/** The schema set this package's source defines. */
export function currentSchemaSet(): SchemaSet {
  const types: Record<string, SchemaSetEntry> = {};
  for (const [type, contract] of Object.entries(EventContracts) as [
    EventType,
    (typeof EventContracts)[EventType],
  ][]) {
    const versions: Record<string, JsonSchema> = {};
    for (const e of SchemaRegistry.filter((x) => x.type === type))
      versions[String(e.version)] = JSON.parse(JSON.stringify(e.schema)) as JsonSchema;
    types[type] = {
      mode: contract.mode,
      writes: contract.writes,
      versions,
      owner: streamOf(type).owner,
      ...(contract.deprecated?.length ? { deprecated: [...contract.deprecated] } : {}),
      ...(contract.typeDeprecated ? { typeDeprecated: true } : {}),
    };
  }
  const envelope: SchemaSetEntry = {
    mode: EnvelopeContract.mode,
    writes: EnvelopeContract.writes,
    owner: EnvelopeContract.owner,
    headerMirrors: { ...EnvelopeContract.headerMirrors },
    versions: Object.fromEntries(
      Object.entries(EnvelopeContract.versions).map(([v, schema]) => [
        v,
        JSON.parse(JSON.stringify(schema)) as JsonSchema,
      ]),
    ),
  };
  return { types, envelope };
}

/**
 * The released snapshot `pnpm contracts:release --name <name>` writes after `previous`: the
 * current schemas, the release history, and for each deprecated version the first release
 * that shipped it deprecated.
 */
export function nextReleasedFile(name: string, current: SchemaSet, previous?: ReleasedFile): ReleasedFile {
  const types: Record<string, SchemaSetEntry> = {};
  for (const [type, entry] of Object.entries(current.types)) {
    const since = { ...(previous?.types[type]?.deprecatedSince ?? {}) };
    for (const v of Object.keys(since)) if (!entry.deprecated?.includes(Number(v))) delete since[v];
    for (const v of entry.deprecated ?? []) since[String(v)] ??= name;
    const typeSince = entry.typeDeprecated ? (previous?.types[type]?.typeDeprecatedSince ?? name) : undefined;
    types[type] = {
      ...entry,
      ...(Object.keys(since).length ? { deprecatedSince: since } : {}),
      ...(typeSince ? { typeDeprecatedSince: typeSince } : {}),
    };
  }
  const history = previous ? (previous.releases ?? [previous.release]) : [];
  const envelope = current.envelope && {
    ...current.envelope,
    ...(current.envelope.headerMirrors
      ? {
          headerMirrorsSince: Object.fromEntries(
            Object.keys(current.envelope.headerMirrors).map((f) => [
              f,
              previous?.envelope?.headerMirrorsSince?.[f] ?? name,
            ]),
          ),
        }
      : {}),
  };
  return { release: name, releases: [...history, name], types, ...(envelope ? { envelope } : {}) };
}

/** An entry's owner, deprecated versions and type deprecation, each only when it has one. */
function governance(e: {
  owner?: string | undefined;
  deprecated?: readonly number[] | undefined;
  typeDeprecated?: boolean | undefined;
  headerMirrors?: Readonly<Record<string, string>> | undefined;
}) {
  return {
    ...(e.owner ? { owner: e.owner } : {}),
    ...(e.deprecated?.length ? { deprecated: e.deprecated } : {}),
    ...(e.typeDeprecated ? { typeDeprecated: true } : {}),
    ...(e.headerMirrors && Object.keys(e.headerMirrors).length ? { headerMirrors: e.headerMirrors } : {}),
  };
}

/** The file of one version's schema, relative to the schemas folder: `<type>/v<N>.json`. */
export function artifactPath(type: string, version: number | string): string {
  return `${type}/v${version}.json`;
}

/** A version's artifact: the schema with its draft, id and title first. */
export function versionArtifact(type: string, version: number | string, schema: JsonSchema): JsonSchema {
  return { $schema: DRAFT, $id: `jetmesh:${type}/v${version}`, title: `${type} v${version}`, ...schema };
}

/** Stable JSON text of an artifact (two-space indent, trailing newline), as committed. */
export function artifactText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Every file `pnpm contracts:generate` writes under packages/contracts/schemas: one per
 * (type, version) and per envelope version, and `index.json` (each type's and the envelope's
 * mode, written version and versions). Pure: the CLI writes them; the check compares them
 * with what is committed.
 */
export function renderSchemaArtifacts(set: SchemaSet = currentSchemaSet()): Map<string, string> {
  const files = new Map<string, string>();
  const render = (type: string, entry: SchemaSetEntry) => {
    const versions = Object.keys(entry.versions)
      .map(Number)
      .sort((a, b) => a - b);
    for (const v of versions)
      files.set(
        artifactPath(type, v),
        artifactText(versionArtifact(type, v, entry.versions[String(v)] as JsonSchema)),
      );
    return { mode: entry.mode, writes: entry.writes, versions, ...governance(entry) };
  };
  const types = Object.fromEntries(Object.entries(set.types).map(([type, e]) => [type, render(type, e)]));
  const envelope = set.envelope ? { envelope: render(ENVELOPE, set.envelope) } : {};
  files.set("index.json", artifactText({ types, ...envelope }));
  return files;
}

/** One `index.json` entry: what it declares and the versions it has artifacts of. */
interface IndexEntry {
  mode: CompatibilityMode;
  writes: number;
  versions: number[];
  owner?: string;
  deprecated?: number[];
  typeDeprecated?: boolean;
  headerMirrors?: Record<string, string>;
}

/**
 * Reads a schema set back from artifacts (`index.json` and the version files it names),
 * given a reader of files relative to the schemas folder.
 * @throws Error naming the file that is missing or not JSON.
 */
export function schemaSetFromArtifacts(read: (path: string) => string): SchemaSet {
  const parse = (path: string): Record<string, unknown> => {
    try {
      return JSON.parse(read(path)) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const file = parse("index.json");
  const index = file.types as Record<string, IndexEntry>;
  if (typeof index !== "object" || index === null) throw new Error("index.json: has no types");
  const entry = (type: string, e: IndexEntry): SchemaSetEntry => {
    const versions: Record<string, JsonSchema> = {};
    for (const v of e.versions) versions[String(v)] = stripAnnotations(parse(artifactPath(type, v)));
    return { mode: e.mode, writes: e.writes, versions, ...governance(e) };
  };
  const types: Record<string, SchemaSetEntry> = {};
  for (const [type, e] of Object.entries(index)) types[type] = entry(type, e);
  const envelope = file.envelope as IndexEntry | undefined;
  return { types, ...(envelope ? { envelope: entry(ENVELOPE, envelope) } : {}) };
}

/** The schema without its top-level annotations ($schema, $id, title...). */
export function stripAnnotations(schema: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(schema).filter(([k]) => !ANNOTATIONS.has(k)));
}
