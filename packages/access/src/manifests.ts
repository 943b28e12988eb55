import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** A durable consumer a service reads through (manifest `inputs`). */
export interface ManifestInput {
  readonly stream: string;
  readonly durable: string;
  readonly types: readonly string[];
}

/** Events a service publishes (manifest `outputs`). */
export interface ManifestOutput {
  readonly stream: string;
  readonly types: readonly string[];
}

/**
 * The part of a services/<name>/manifest.json that says what the service touches on NATS.
 * Other keys (http, effects of other kinds, ports, ...) are carried but not read.
 */
export interface ServiceManifest {
  readonly name: string;
  readonly kind?: string;
  readonly inputs?: readonly ManifestInput[];
  readonly outputs?: readonly ManifestOutput[];
  /** Its DLQ subject, `dlq.<stage>`. */
  readonly dlq?: string;
  /** Streams it reads with ordered (ephemeral) consumers. */
  readonly follows?: readonly { readonly stream: string; readonly consumer?: string }[];
  /** Other services' consumers whose info it reads. */
  readonly watches?: readonly { readonly stream: string; readonly durable: string }[];
  readonly effects?: readonly unknown[];
  readonly env?: Readonly<Record<string, { readonly default?: unknown } | undefined>>;
  /** Extra commands of the service (`rebuild`): each connects as `<name>-<command>`. */
  readonly commands?: Readonly<Record<string, string>>;
}

/**
 * Reads every `<servicesDir>/<dir>/manifest.json`, as data (nothing is imported from a
 * service), sorted by name.
 * @throws when a manifest is not JSON or has no name.
 */
export function readManifests(servicesDir: string): ServiceManifest[] {
  const manifests: ServiceManifest[] = [];
  for (const dir of readdirSync(servicesDir).sort()) {
    const file = join(servicesDir, dir, "manifest.json");
    try {
      if (!statSync(file).isFile()) continue;
    } catch {
      continue;
    }
    const m = JSON.parse(readFileSync(file, "utf8")) as ServiceManifest;
    if (typeof m.name !== "string" || !m.name) throw new Error(`${file}: no name`);
    manifests.push(m);
  }
  return manifests.sort((a, b) => a.name.localeCompare(b.name));
}

/** True when the service speaks NATS at all (bank-sim, the external bank's stand-in, does not). */
export function usesNats(m: ServiceManifest): boolean {
  return !!(m.inputs?.length || m.outputs?.length || m.dlq || m.follows?.length || m.watches?.length);
}

/** Resolves `${VAR}` from the manifest's env defaults; undefined when it has none. */
function resolveEnv(m: ServiceManifest, value: string): string | undefined {
  const ref = /^\$\{([A-Z0-9_]+)\}$/.exec(value);
  if (!ref) return value;
  const d = m.env?.[ref[1] as string]?.default;
  return typeof d === "string" && d ? d : undefined;
}

/**
 * The KV buckets a service owns: structured effects `{ kind: "kv", bucket }` and every
 * `*_BUCKET` setting of its env (the bucket is configurable; its default is the name
 * deployed). The consumer positions bucket every stage shares is not among them.
 */
export function ownedBuckets(m: ServiceManifest): string[] {
  const buckets = new Set<string>();
  for (const e of m.effects ?? []) {
    if (typeof e !== "object" || e === null) continue;
    const { kind, bucket } = e as { kind?: unknown; bucket?: unknown };
    if (kind !== "kv" || typeof bucket !== "string") continue;
    const name = resolveEnv(m, bucket);
    if (name) buckets.add(name);
  }
  for (const [key, spec] of Object.entries(m.env ?? {})) {
    if (key.endsWith("_BUCKET") && typeof spec?.default === "string" && spec.default)
      buckets.add(spec.default);
  }
  return [...buckets].sort();
}

/**
 * The NATS connection names of a service: its own, and `<name>-<command>` for each extra
 * command (the ledger's `rebuild` connects as `ledger-rebuild`). The runtime derives each
 * connection's inbox prefix from its name (`inboxPrefixOf` in @jetmesh/stage).
 */
export function connectionNames(m: ServiceManifest): string[] {
  return [m.name, ...Object.keys(m.commands ?? {}).map((c) => `${m.name}-${c}`)];
}
