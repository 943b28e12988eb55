import type { ServiceManifest } from "@jetmesh/catalog";

// The manifests are read by the catalog (@jetmesh/catalog), the one reader; what is here is
// what NATS permissions need of them.
export type { ManifestInput, ManifestOutput, ServiceManifest } from "@jetmesh/catalog";
export { readManifests, usesNats } from "@jetmesh/catalog";

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
