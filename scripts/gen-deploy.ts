// Writes deploy/streams/<NAME>.json from the stream definitions in @jetmesh/contracts,
// in the form `nats stream add --config deploy/streams/<NAME>.json` accepts. The
// production topology runs R3 streams; test/deploy.test.ts fails when a file is stale.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Streams, toStreamConfig } from "@jetmesh/contracts";

export const DEPLOY_REPLICAS = 3;

export function renderStreamFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const def of Object.values(Streams)) {
    files.set(
      `${def.name}.json`,
      `${JSON.stringify(toStreamConfig(def, { replicas: DEPLOY_REPLICAS }), null, 2)}\n`,
    );
  }
  return files;
}

if (process.argv[1]?.endsWith("gen-deploy.ts")) {
  const dir = join(import.meta.dirname, "..", "deploy", "streams");
  for (const [name, text] of renderStreamFiles()) writeFileSync(join(dir, name), text);
  console.log(`wrote ${[...renderStreamFiles().keys()].join(", ")} to ${dir}`);
}
