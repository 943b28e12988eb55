import {
  contractNeeds,
  currentSchemaSet,
  deprecatedInputs,
  ENVELOPE,
  type JsonSchema,
  REGISTRY_BUCKET,
  REGISTRY_INDEX_KEY,
  type RegistryIndex,
  type RegistryView,
  registryIssues,
  registrySchemaKey,
  releasedSchemas,
  type SchemaSet,
} from "@jetmesh/contracts/evolution";
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import { namesFor } from "@jetmesh/contracts";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ConfigError } from "./errors.ts";

/**
 * The schema registry in NATS KV ({@link REGISTRY_BUCKET}): the deploy step publishes every
 * (type, version), the envelope's versions and each one's mode, written and released versions;
 * a service checks what it consumes and produces (and the envelope it writes) against it before
 * it consumes anything.
 */

/** What publishing changed: keys written, keys already holding the same value. */
export interface PublishResult {
  readonly written: readonly string[];
  readonly unchanged: readonly string[];
}

/**
 * Publishes the registry's documents (`registryDocuments` of @jetmesh/contracts/evolution),
 * creating the bucket when missing. Idempotent: a key already holding the same value is not
 * written again, so a second deploy of the same tree adds no revision.
 * @throws Error when a version's schema in the bucket differs from the one published: a
 *   released version never changes (the gate refuses it first; this guards a stale tree).
 */
export async function publishSchemaRegistry(
  client: JetStreamClient | NatsConnection,
  documents: ReadonlyMap<string, unknown>,
  opts: { replicas?: number; namespace?: string } = {},
): Promise<PublishResult> {
  const js = "jetstreamManager" in client ? client : jetstream(client);
  const kv = await new Kvm(js).create(namesFor(opts.namespace).bucket(REGISTRY_BUCKET), {
    history: 5,
    replicas: opts.replicas ?? 1,
    description:
      "jetmesh event schemas: every (type, version), each type's mode, written and released versions",
  });
  const written: string[] = [];
  const unchanged: string[] = [];
  for (const [key, value] of documents) {
    const text = JSON.stringify(value);
    const have = await kv.get(key);
    const old = have?.operation === "PUT" ? have.string() : undefined;
    if (old === text) {
      unchanged.push(key);
      continue;
    }
    if (old !== undefined && key !== REGISTRY_INDEX_KEY)
      throw new Error(
        `schema registry: ${key} differs from the published one; a version never changes, add one`,
      );
    await kv.put(key, text);
    written.push(key);
  }
  return { written, unchanged };
}

/** A server that did not answer (retried by start-up), as opposed to one that said no. */
const unanswered = (err: unknown) =>
  err instanceof Error && /timeout|no responders/i.test(`${err.name} ${err.message}`);

/** The registry as published, or why it cannot be read (missing bucket or index, no permission). */
export async function readSchemaRegistry(
  js: JetStreamClient,
  namespace = "",
): Promise<{ readonly view: RegistryView } | { readonly missing: string }> {
  const bucket = namesFor(namespace).bucket(REGISTRY_BUCKET);
  let kv: KV;
  try {
    kv = await new Kvm(js).open(bucket);
  } catch (err) {
    if (unanswered(err)) throw err;
    return { missing: `no bucket ${bucket} (${(err as Error).message})` };
  }
  const entry = await kv.get(REGISTRY_INDEX_KEY).catch((err: Error) => err);
  if (entry instanceof Error) {
    if (unanswered(entry)) throw entry;
    return { missing: `cannot read ${bucket}: ${entry.message}` };
  }
  if (entry?.operation !== "PUT") return { missing: `no ${REGISTRY_INDEX_KEY} in ${bucket}` };
  const index = entry.json<RegistryIndex>();
  const schemas = new Map<string, JsonSchema>();
  const entries = Object.entries(index.types);
  if (index.envelope) entries.push([ENVELOPE, index.envelope]);
  for (const [type, t] of entries)
    for (const v of t.versions) {
      const e = await kv.get(registrySchemaKey(type, v));
      if (e?.operation === "PUT") schemas.set(registrySchemaKey(type, v), e.json<JsonSchema>());
    }
  return { view: { index, schema: (type, v) => schemas.get(registrySchemaKey(type, v)) } };
}

/**
 * A service's start-up check against the registry: refuses (ConfigError, one line per event
 * and field) when it cannot read what producers write or would write a version no release
 * taught readers. A registry that cannot be read is a warning, not a refusal: it is published
 * by the deploy step, which a development mesh or an older deployment may not have run, and
 * a service that refused then could never start there; the compatibility gate in CI still
 * stands between a build and production.
 * @returns the warnings logged (empty when the registry was checked).
 * @throws ConfigError listing every incompatibility.
 */
export async function checkSchemaRegistry(o: {
  js: JetStreamClient;
  service: string;
  consumes: readonly string[];
  produces: readonly string[];
  logger: Logger;
  /** JETMESH_NAMESPACE: the registry's bucket is resolved in it. */
  namespace?: string;
}): Promise<string[]> {
  const read = await readSchemaRegistry(o.js, o.namespace);
  const bucket = namesFor(o.namespace).bucket(REGISTRY_BUCKET);
  if ("missing" in read) {
    const warning = `schema registry not checked: ${read.missing}; run the deploy step (pnpm contracts:publish) so services check their contracts at start`;
    o.logger.warn({ bucket }, warning);
    return [warning];
  }
  const problems = registryIssues(contractNeeds(currentSchemaSet(), o.consumes, o.produces), read.view);
  if (problems.length)
    throw new ConfigError(
      problems.map((p) => `contracts: ${p} (schema registry, release ${read.view.index.release})`),
    );
  o.logger.info(
    { bucket, release: read.view.index.release, consumes: o.consumes, produces: o.produces },
    "contracts match the schema registry",
  );
  return [];
}

/**
 * Warns, once at start, for each type the service consumes that is announced for removal
 * (`EventContracts[type].typeDeprecated`): its team moves off it before the type is removed,
 * which the gate allows once the deprecation window has run.
 * @returns the warnings logged.
 */
export function warnDeprecatedInputs(o: {
  service: string;
  consumes: readonly string[];
  logger: Logger;
  /** This build's schema set and released snapshot (defaults: this build's). */
  set?: SchemaSet;
  released?: SchemaSet;
}): string[] {
  const found = deprecatedInputs(o.set ?? currentSchemaSet(), o.released ?? releasedSchemas(), o.consumes);
  return found.map((d) => {
    const when = d.since ? `in release ${d.since}` : "in this build, no release has shipped it yet";
    const warning = `${o.service} consumes ${d.type}, announced for removal ${when}: move ${o.service} off it before the deprecation window ends${d.owner ? ` (owner: ${d.owner})` : ""}`;
    o.logger.warn({ stage: o.service, event_type: d.type, announced_in: d.since ?? null }, warning);
    return warning;
  });
}
