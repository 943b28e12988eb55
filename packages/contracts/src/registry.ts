import {
  ENVELOPE,
  type JsonSchema,
  type SchemaSet,
  type SchemaSetEntry,
  stripAnnotations,
} from "./artifacts.ts";
import { checkVersion, firstDifference } from "./compatibility.ts";
import type { CompatibilityMode } from "./schemas.ts";
import type { ReleasedFile } from "./artifacts.ts";
import released from "../schemas/released.json" with { type: "json" };

/**
 * The schema registry as it is kept in the NATS KV bucket {@link REGISTRY_BUCKET}: what the
 * deploy step publishes and what a service checks itself against when it starts. Pure
 * documents and rules here; the KV reads and writes are the runtime's (@jetmesh/stage).
 */

/** The KV bucket holding the deployed schemas. */
export const REGISTRY_BUCKET = "jetmesh-schemas";
/** The key of the registry's index: every type's mode, written version and versions. */
export const REGISTRY_INDEX_KEY = "index";

/** One type in the registry's index. */
export interface RegistryType {
  readonly mode: CompatibilityMode;
  /** The version producers of the deployed tree write. */
  readonly writes: number;
  /** Every version whose schema the registry holds. */
  readonly versions: readonly number[];
  /**
   * The versions a release has taught readers (`schemas/released.json` at deploy time):
   * the only ones a producer may start writing (rollout order: consumers before producers).
   */
  readonly released: readonly number[];
  /** The owning team (its stream's owner): whom a refused consumer talks to. */
  readonly owner?: string;
  /** Versions announced deprecated: still read, removed after the deprecation window. */
  readonly deprecated?: readonly number[];
  /** The whole type announced deprecated: its consumers move off it before it is removed. */
  readonly typeDeprecated?: boolean;
}

/** The index document (key {@link REGISTRY_INDEX_KEY}). */
export interface RegistryIndex {
  /** The release whose snapshot gave `released`. */
  readonly release: string;
  readonly types: Readonly<Record<string, RegistryType>>;
  /**
   * The envelope's versions (schemas under `schema.envelope.v<N>`); absent in a registry
   * published before the deploy step wrote them.
   */
  readonly envelope?: RegistryType;
}

/** The key of one version's schema: `schema.<type>.v<N>`. */
export function registrySchemaKey(type: string, version: number): string {
  return `schema.${type}.v${version}`;
}

/**
 * Every key the deploy step writes: the index and one JSON Schema per (type, version), from
 * the tree's schema set and the last released set.
 */
export function registryDocuments(
  current: SchemaSet,
  released: SchemaSet & { readonly release: string },
): Map<string, unknown> {
  const docs = new Map<string, unknown>();
  /** One entry of the index, its versions' schemas added to `docs` under `name`. */
  const publish = (name: string, entry: SchemaSetEntry, rel: SchemaSetEntry | undefined): RegistryType => {
    const versions = sortedVersions(entry);
    for (const v of versions) docs.set(registrySchemaKey(name, v), entry.versions[String(v)]);
    return {
      mode: entry.mode,
      writes: entry.writes,
      versions,
      released: rel ? sortedVersions(rel) : [],
      ...(entry.owner ? { owner: entry.owner } : {}),
      ...(entry.deprecated?.length ? { deprecated: entry.deprecated } : {}),
      ...(entry.typeDeprecated ? { typeDeprecated: true } : {}),
    };
  };
  const types: Record<string, RegistryType> = {};
  for (const [type, entry] of Object.entries(current.types))
    types[type] = publish(type, entry, released.types[type]);
  const envelope = current.envelope && publish(ENVELOPE, current.envelope, released.envelope);
  docs.set(REGISTRY_INDEX_KEY, {
    release: released.release,
    types,
    ...(envelope ? { envelope } : {}),
  } satisfies RegistryIndex);
  return docs;
}

const sortedVersions = (entry: SchemaSetEntry): number[] =>
  Object.keys(entry.versions)
    .map(Number)
    .sort((a, b) => a - b);

/** What the registry holds, as a service reads it: the index and a reader of schemas. */
export interface RegistryView {
  readonly index: RegistryIndex;
  schema(type: string, version: number): JsonSchema | undefined;
}

/** What a service reads and writes, from its build of this package. */
export interface ServiceContractNeeds {
  /** Each type consumed: the schemas this build reads (1..read version) and the type's mode. */
  readonly consumes: readonly {
    readonly type: string;
    readonly mode: CompatibilityMode;
    readonly versions: Readonly<Record<string, JsonSchema>>;
  }[];
  /** Each type produced: the version this build writes and its schema. */
  readonly produces: readonly ProducedSchema[];
  /** The envelope version this build writes, when it produces anything (and the set has one). */
  readonly envelope?: ProducedSchema;
}

/** A schema a service writes: the type (or {@link ENVELOPE}), its version and schema. */
export interface ProducedSchema {
  readonly type: string;
  readonly version: number;
  readonly schema: JsonSchema;
}

/**
 * The needs of a service that consumes `consumes` and produces `produces`, from a schema set
 * (this build's: {@link currentSchemaSet}).
 */
export function contractNeeds(
  set: SchemaSet,
  consumes: readonly string[],
  produces: readonly string[],
): ServiceContractNeeds {
  const entry = (type: string) => {
    const e = set.types[type];
    if (!e) throw new Error(`contracts: ${type} is not an event type of this build`);
    return e;
  };
  return {
    consumes: [...new Set(consumes)].map((type) => ({
      type,
      mode: entry(type).mode,
      versions: entry(type).versions,
    })),
    produces: [...new Set(produces)].map((type) => written(type, entry(type))),
    ...(produces.length > 0 && set.envelope ? { envelope: written(ENVELOPE, set.envelope) } : {}),
  };
}

const written = (type: string, e: SchemaSetEntry): ProducedSchema => ({
  type,
  version: e.writes,
  schema: e.versions[String(e.writes)] as JsonSchema,
});

/**
 * Checks a service's needs against the deployed registry. Returns one line per reason to
 * refuse the start, each naming the event, version and field:
 * - a consumer whose producers write a version it does not know, where the type's mode allows
 *   no tolerant read (`backward`), or where that version drops or changes a field this build's
 *   reader requires (the codec validates every field of the read schema, so a field the
 *   handler never looks at still parks the event);
 * - a version both know whose schemas differ (a version never changes once released);
 * - a producer writing a version above the newest the registry lists as released: readers
 *   learn a version in one release, producers write it in a later one (consumers before
 *   producers); a type no release has shipped yet has no readers to break, as in the gate;
 * - a producer of a type the registry does not know, or of a version it holds no schema for;
 * - the same three for the envelope version a producing service writes (a registry published
 *   before the deploy step wrote the envelope does not know it).
 */
export function registryIssues(needs: ServiceContractNeeds, registry: RegistryView): string[] {
  const out: string[] = [];
  const differs = (type: string, v: number, mine: JsonSchema, prefix: string) => {
    const theirs = registry.schema(type, v);
    if (!theirs) return;
    const at = firstDifference(stripAnnotations(mine), stripAnnotations(theirs), "");
    if (at !== undefined)
      out.push(
        `${prefix} ${type}@${v} ${at || "/"}: the registry's schema differs from this build's (released versions never change; rebuild against the released contracts)`,
      );
  };
  for (const c of needs.consumes) {
    const reg = registry.index.types[c.type];
    if (!reg) continue; // no producer has deployed it: nothing to read yet
    const known = Object.keys(c.versions).map(Number);
    const top = Math.max(...known);
    for (const v of known) differs(c.type, v, c.versions[String(v)] as JsonSchema, "consumes");
    if (reg.writes <= top) continue;
    if (c.mode === "backward") {
      out.push(
        `consumes ${c.type}@${reg.writes} /: producers write v${reg.writes} per the registry, this build reads up to v${top} and ${c.type} is backward-only (no tolerant read): deploy a build that reads v${reg.writes}`,
      );
      continue;
    }
    const written = registry.schema(c.type, reg.writes);
    if (!written) {
      out.push(
        `consumes ${c.type}@${reg.writes} /: the registry lists no schema for the version producers write`,
      );
      continue;
    }
    for (const v of checkVersion(
      c.type,
      reg.writes,
      "forward",
      c.versions[String(top)] as JsonSchema,
      written,
    ))
      out.push(
        `consumes ${c.type}@${v.version} ${v.field}: this build reads it as v${top}, and ${v.rule}${reg.owner ? ` (owner: ${reg.owner})` : ""}`,
      );
  }
  const produced = (p: ProducedSchema, reg: RegistryType | undefined) => {
    if (!reg) {
      out.push(
        `produces ${p.type}@${p.version} /: the registry does not know ${p.type}: run the deploy step (pnpm contracts:publish) before starting its producers`,
      );
      return;
    }
    // A type no release has shipped yet has no reader to break (as in the gate): its first
    // versions may be written before they are released.
    if (reg.released.length > 0 && p.version > Math.max(...reg.released)) {
      out.push(
        `produces ${p.type}@${p.version} /: v${p.version} is not released in the registry (released: ${reg.released.map((v) => `v${v}`).join(", ") || "none"}, release ${registry.index.release}): release it and deploy its consumers before its producers`,
      );
      return;
    }
    if (!reg.versions.includes(p.version)) {
      out.push(
        `produces ${p.type}@${p.version} /: the registry holds no v${p.version} (holds: ${reg.versions.map((v) => `v${v}`).join(", ") || "none"}): publish a tree that has it (pnpm contracts:publish) before starting its producers`,
      );
      return;
    }
    differs(p.type, p.version, p.schema, "produces");
  };
  for (const p of needs.produces) produced(p, registry.index.types[p.type]);
  if (needs.envelope) produced(needs.envelope, registry.index.envelope);
  return out;
}

/** A consumed event type announced for removal (`EventContracts[type].typeDeprecated`). */
export interface DeprecatedInput {
  readonly type: string;
  /** The first release that shipped the announcement (`typeDeprecatedSince`); absent while none has. */
  readonly since?: string;
  readonly owner?: string;
}

/**
 * The types among `consumes` that `set` announces for removal, with the release of `released`
 * that first shipped the announcement: a consumer's team has to move off them within the
 * deprecation window.
 */
export function deprecatedInputs(
  set: SchemaSet,
  released: SchemaSet,
  consumes: readonly string[],
): DeprecatedInput[] {
  return [...new Set(consumes)].flatMap((type) => {
    const e = set.types[type];
    if (!e?.typeDeprecated) return [];
    const since = released.types[type]?.typeDeprecatedSince;
    return [{ type, ...(since ? { since } : {}), ...(e.owner ? { owner: e.owner } : {}) }];
  });
}

/** The last released schema set this checkout ships (`schemas/released.json`): what a deploy step publishes next to the tree's. */
export function releasedSchemas(): ReleasedFile {
  return released as unknown as ReleasedFile;
}
