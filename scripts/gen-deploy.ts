// Writes, from the code, what the deploy step feeds the nats CLI:
// - deploy/streams/<NAME>.json from the stream definitions in @jetmesh/contracts, in the form
//   `nats stream add --config deploy/streams/<NAME>.json` accepts. The production topology
//   runs R3 streams;
// - deploy/streams-r1/<NAME>.json, the same streams with one replica, for a single dev server
//   (an R3 file is refused there: "insufficient resources");
// - deploy/consumers/<STREAM>.<durable>.json, every durable consumer the services declare in
//   their manifests (`inputs`, plus each stage's `<stage>-replay` on REPLAY), as the runtime
//   creates them (`inputConsumerSpec`, `consumerConfig`) with the JETMESH_* defaults, in the form
//   `nats consumer add <STREAM> --config <file>` accepts;
// - the services' parts of docker-compose.yml and of Prometheus's scrape jobs, from the
//   manifests (scripts/deploy-services.ts: only the lines between its markers).
// test/deploy.test.ts fails when a file is stale and has a real server accept each one.
// `--namespace <ns> --out <dir>` writes the same three folders under <dir> with every stream,
// subject and durable's stream named in that namespace (dev isolation, JETMESH_NAMESPACE);
// deploy/ itself always holds production's names.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCatalog } from "@jetmesh/catalog";
import { namesFor, toStreamConfig } from "@jetmesh/contracts";
import { stageSettings } from "@jetmesh/stage";
import { consumerConfig, inputConsumerSpec, replayConsumerSpec } from "@jetmesh/stage/internal";
import { renderServiceDeployFiles } from "./deploy-services.ts";

export const DEPLOY_REPLICAS = 3;

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

export function renderStreamFiles(replicas = DEPLOY_REPLICAS, namespace = ""): Map<string, string> {
  const files = new Map<string, string>();
  for (const def of Object.values(namesFor(namespace).streams))
    files.set(`${def.name}.json`, json(toStreamConfig(def, { replicas })));
  return files;
}

/** `<STREAM>.<durable>.json` → the consumer's config, for every durable the services declare. */
export function renderConsumerFiles(namespace = ""): Map<string, string> {
  const s = stageSettings({ namespace });
  const files = new Map<string, string>();
  for (const service of loadCatalog().services) {
    const inputs = service.manifest.inputs ?? [];
    for (const input of inputs) {
      const spec = inputConsumerSpec(input.durable, input as Parameters<typeof inputConsumerSpec>[1], s);
      files.set(`${spec.stream}.${spec.durable}.json`, json(consumerConfig(spec)));
    }
    for (const durable of new Set(inputs.map((i) => i.durable))) {
      const spec = replayConsumerSpec(durable, s);
      files.set(`${spec.stream}.${spec.durable}.json`, json(consumerConfig(spec)));
    }
  }
  return new Map([...files].sort(([a], [b]) => a.localeCompare(b)));
}

export const DeployDirs = {
  streams: join(import.meta.dirname, "..", "deploy", "streams"),
  streamsR1: join(import.meta.dirname, "..", "deploy", "streams-r1"),
  consumers: join(import.meta.dirname, "..", "deploy", "consumers"),
} as const;

function writeDir(dir: string, files: Map<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith(".json") && !files.has(f)) rmSync(join(dir, f));
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  console.log(`wrote ${[...files.keys()].join(", ")} to ${dir}`);
}

/** `--namespace <ns> --out <dir>`: where and in which namespace to write; deploy/ and production's names without. */
function targetOf(argv: readonly string[]): { namespace: string; dirs: typeof DeployDirs } {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const namespace = value("--namespace") ?? "";
  const out = value("--out");
  if (!namespace && !out) return { namespace, dirs: DeployDirs };
  if (!namespace || !out)
    throw new Error("--namespace and --out go together (deploy/ holds production's names only)");
  namesFor(namespace); // refuses a namespace that cannot be one
  return {
    namespace,
    dirs: {
      streams: join(out, "streams"),
      streamsR1: join(out, "streams-r1"),
      consumers: join(out, "consumers"),
    },
  };
}

if (process.argv[1]?.endsWith("gen-deploy.ts")) {
  const { namespace, dirs } = targetOf(process.argv.slice(2));
  writeDir(dirs.streams, renderStreamFiles(DEPLOY_REPLICAS, namespace));
  writeDir(dirs.streamsR1, renderStreamFiles(1, namespace));
  writeDir(dirs.consumers, renderConsumerFiles(namespace));
  // docker-compose.yml and prometheus.yml are production's: a namespace's copy has none.
  if (!namespace) writeServiceDeployFiles(join(import.meta.dirname, ".."));
}

/** Rewrites the generated parts of docker-compose.yml and prometheus.yml under `root`. */
function writeServiceDeployFiles(root: string): void {
  for (const [file, text] of renderServiceDeployFiles(root)) writeFileSync(join(root, file), text);
  console.log("wrote the services' parts of docker-compose.yml and prometheus.yml");
}
