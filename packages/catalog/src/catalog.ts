import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PipelineStreams, type StreamName, StreamNames, Streams } from "@jetmesh/contracts";
import { bundlesOf, readManifests, type ServiceManifest } from "./read.mjs";

/**
 * This checkout's services/ folder: next to the nearest pnpm-workspace.yaml above this module
 * (packages/catalog/src/catalog.ts, or a bundle of it at any depth, such as the simulator's
 * mutant bundles in packages/sim/dist/mutants/).
 */
export const servicesDir: string = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return join(dir, "services");
    if (dirname(dir) === dir) return resolve(here, "../../../services");
  }
})();

/** A manifest that contradicts the contracts or itself; the message names the file and the field. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
}

/** One service as the tools see it, derived from its manifest. */
export interface CatalogService {
  readonly name: string;
  readonly manifest: ServiceManifest;
  /** The process it runs, relative to the repository root (the first of its bundles). */
  readonly entry: string;
  /** Every entry point scripts/build.mjs bundles for it. */
  readonly bundles: readonly string[];
  /** Environment variable of the port it is reached at (its first port). */
  readonly portEnv: string;
  /** That port's default, as deployed. */
  readonly port: number;
  /** Environment variable of a separate port serving readiness and metrics (the gateway's ops port). */
  readonly opsPortEnv?: string;
  /** Path answering 200 once it is ready: `/readyz`, or `/healthz` for one without (the bank). */
  readonly readyPath: string;
  /** Port its /metrics answers on, as deployed; undefined when it serves none. */
  readonly metricsPort?: number;
  /** True when it speaks NATS (and Redis): a jetmesh stage or the gateway, not the bank's stand-in. */
  readonly jetmesh: boolean;
  /** The streams it publishes to, in pipeline order. */
  readonly outputs: readonly StreamName[];
  /** The streams it reads through durable consumers, with the durable's name. */
  readonly inputs: readonly { readonly stream: StreamName; readonly durable: string }[];
}

/** Every service, checked against the contracts. */
export interface Catalog {
  /** In pipeline order: by the first stream each one writes (none first), then by name. */
  readonly services: readonly CatalogService[];
  /** Names of {@link services}, same order. */
  readonly names: readonly string[];
  /** The services that speak NATS: what a fault can hit, what has a NATS user. */
  readonly stages: readonly CatalogService[];
  /** Every stream a service reads or writes, in pipeline order, then the DLQ. */
  readonly streams: readonly StreamName[];
  /** The service named `name`. @throws CatalogError when there is none. */
  service(name: string): CatalogService;
}

/** True when the service speaks NATS at all (bank-sim, the external bank's stand-in, does not). */
export function usesNats(m: ServiceManifest): boolean {
  return !!(m.inputs?.length || m.outputs?.length || m.dlq || m.follows?.length || m.watches?.length);
}

/**
 * Reads `services/*\/manifest.json` (default: this checkout's) and checks each against the
 * contracts: every stream it names is a stream of @jetmesh/contracts, every event type it
 * names is stored in that stream, and it has a port.
 * @throws CatalogError naming the manifest and field at fault; Error when a service folder
 *   has no manifest.json.
 */
export function loadCatalog(dir: string = servicesDir): Catalog {
  const services = readManifests(dir)
    .map((m) => describe(m, join(dir, m.name, "manifest.json")))
    .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const used = new Set(services.flatMap((s) => [...s.outputs, ...s.inputs.map((i) => i.stream)]));
  const byName = new Map(services.map((s) => [s.name, s]));
  return {
    services,
    names: services.map((s) => s.name),
    stages: services.filter((s) => s.jetmesh),
    streams: [...PipelineStreams.filter((s) => used.has(s)), StreamNames.Dlq],
    service(name) {
      const s = byName.get(name);
      if (!s)
        throw new CatalogError(`no service "${name}" in the catalog (${[...byName.keys()].join(", ")})`);
      return s;
    },
  };
}

const rank = (s: CatalogService) => (s.outputs[0] ? PipelineStreams.indexOf(s.outputs[0]) : -1);

function describe(m: ServiceManifest, file: string): CatalogService {
  const stream = (name: string, where: string, types: readonly string[]): StreamName => {
    const def = (Streams as Readonly<Record<string, (typeof Streams)[StreamName] | undefined>>)[name];
    if (!def)
      throw new CatalogError(
        `${file}: ${where}.stream "${name}" is not a stream of @jetmesh/contracts (known: ${Object.keys(Streams).join(", ")}); add it to the contracts first`,
      );
    for (const t of types)
      if (!(def.eventTypes as readonly string[]).includes(t))
        throw new CatalogError(`${file}: ${where} names ${t}, which stream ${name} does not store`);
    return def.name;
  };
  const outputs = (m.outputs ?? []).map((o, i) => stream(o.stream, `outputs[${i}]`, o.types));
  const inputs = (m.inputs ?? []).map((x, i) => ({
    stream: stream(x.stream, `inputs[${i}]`, x.types),
    durable: x.durable,
  }));
  for (const [i, f] of (m.follows ?? []).entries()) stream(f.stream, `follows[${i}]`, []);
  for (const [i, w] of (m.watches ?? []).entries()) stream(w.stream, `watches[${i}]`, []);
  const ports = m.ports ?? [];
  const first = ports[0];
  if (!first)
    throw new CatalogError(`${file}: no ports; the first port is the one the service is reached at`);
  const readyPath = ports.some((p) => p.paths?.includes("/readyz")) ? "/readyz" : "/healthz";
  const ops = ports.find((p) => p !== first && p.paths?.includes(readyPath));
  const metricsPort = ports.find((p) => p.paths?.includes("/metrics"))?.default;
  const bundles = bundlesOf(m);
  return {
    name: m.name,
    manifest: m,
    entry: bundles[0] as string,
    bundles,
    portEnv: first.env,
    port: first.default,
    ...(ops ? { opsPortEnv: ops.env } : {}),
    readyPath,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    jetmesh: usesNats(m),
    outputs: [...new Set(outputs)].sort((a, b) => PipelineStreams.indexOf(a) - PipelineStreams.indexOf(b)),
    inputs,
  };
}
