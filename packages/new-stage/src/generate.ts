import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { addContractEntry, contractAdvice, TEAM_STREAMS_FILE } from "./contract-entry.ts";
import { NewStageError, type NewStageRequest, planStage, type StagePlan } from "./plan.ts";
import { serviceFiles } from "./templates.ts";

/** This checkout (this file is packages/new-stage/src/generate.ts). */
export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export interface GenerateOptions extends NewStageRequest {
  /** The repository to write into (default: this checkout). */
  readonly root?: string;
  /** Add the missing contract entry to packages/contracts instead of refusing. */
  readonly addContract?: boolean;
  /** Run `pnpm install --offline` so the new workspace package is linked (default true). */
  readonly install?: boolean;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/** What {@link generateStage} did. */
export interface Generated {
  readonly plan: StagePlan;
  /** Files written, relative to the root: the service's, then the ones outside its folder. */
  readonly written: readonly string[];
  /** Files outside services/<name>/ it changed (the contract entry, the files generated from it and the manifest, the lockfile). */
  readonly outside: readonly string[];
}

/**
 * Scaffolds `services/<name>/` in `root`: a stage that consumes `consumes`, emits `emits`, builds,
 * passes its tests and the stage contract suite, and is in the catalog (so `pnpm mesh`, chaos
 * and the build take it). Outside its folder it writes only the contract entry (with
 * `addContract`); `pnpm gen:deploy` then writes what derives from the entry and the manifest
 * (deploy/streams/<STREAM>.json, its consumers, its service in docker-compose.yml and its
 * scrape job), and `pnpm install` the lockfile (a new workspace package). Nothing is written
 * when a check fails.
 * @throws NewStageError for a request to change (a bad or taken name, an unknown or foreign
 *   event, a contract entry missing without `addContract`: its message is the entry to add).
 */
export function generateStage(o: GenerateOptions): Generated {
  const root = o.root ?? repoRoot;
  const log = o.log ?? (() => {});
  const plan = planStage(o, join(root, "services"));
  if (plan.contract && !o.addContract) throw new NewStageError(contractAdvice(plan));
  const typeboxVersion = JSON.parse(readFileSync(join(root, "packages/stage/package.json"), "utf8"))
    .dependencies["@sinclair/typebox"] as string;

  const outside: string[] = [];
  if (plan.contract) {
    addContractEntry(root, plan);
    outside.push(TEAM_STREAMS_FILE);
    log(
      `added ${plan.emits}${plan.contract.kind === "stream" ? ` and stream ${plan.outputStream}` : ""} to ${TEAM_STREAMS_FILE}`,
    );
  }
  const written: string[] = [];
  for (const [path, text] of serviceFiles({ ...plan, typeboxVersion })) {
    const file = join(root, "services", plan.name, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    written.push(`services/${plan.name}/${path}`);
  }
  log(`wrote services/${plan.name}/ (${written.length} files, HTTP port ${plan.port})`);
  // the house format (biome.json), so the lint that checks the whole tree passes at once
  run(root, "pnpm", [
    "exec",
    "biome",
    "format",
    "--write",
    `services/${plan.name}`,
    ...(plan.contract ? [TEAM_STREAMS_FILE] : []),
  ]);
  // The deploy files follow the catalog and the contracts (`pnpm gen:deploy`): the stage's
  // durable consumers (its input and its replays), its stream when the contract entry added
  // one, its compose service and secrets, its Prometheus scrape job.
  run(root, "node", ["--import", "tsx", "scripts/gen-deploy.ts"]);
  outside.push(
    `deploy/consumers/${plan.inputStream}.${plan.name}.json`,
    `deploy/consumers/REPLAY.${plan.name}-replay.json`,
    "docker-compose.yml",
    "deploy/observability/prometheus/prometheus.yml",
  );
  if (plan.contract?.kind === "stream")
    outside.push(`deploy/streams/${plan.outputStream}.json`, `deploy/streams-r1/${plan.outputStream}.json`);
  if (o.install ?? true) {
    // --no-frozen-lockfile: a new package is a new importer of the lockfile, also where CI=true
    // makes frozen the default.
    run(root, "pnpm", ["install", "--offline", "--no-frozen-lockfile"]);
    outside.push("pnpm-lock.yaml");
  }
  log(`changed outside the stage's folder: ${outside.join(", ")}`);
  return { plan, written: [...written, ...outside], outside };
}

function run(cwd: string, command: string, args: string[]): void {
  const r = spawnSync(command, args, { cwd, encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`${command} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
}
