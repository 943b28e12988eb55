import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StagePlan } from "./plan.ts";

// docker-compose.yml and Prometheus's scrape jobs are written by hand (comments, anchors, the
// cluster around the services), and test/deploy.test.ts checks them against the catalog: a
// stage the catalog has and they lack fails it. So the generator adds the stage to both, in
// the shape the other stages have there.

export const COMPOSE_FILE = "docker-compose.yml";
export const PROMETHEUS_FILE = "deploy/observability/prometheus/prometheus.yml";

/** Inserts `block` after the last line matching `last`. @throws when none does. */
function afterLast(text: string, last: RegExp, block: string, file: string): string {
  const lines = text.split("\n");
  let i = lines.length - 1;
  while (i >= 0 && !last.test(lines[i] as string)) i--;
  if (i < 0) throw new Error(`${file}: no line like ${last} to add after; add the stage by hand`);
  lines.splice(i + 1, 0, block);
  return lines.join("\n");
}

/** docker-compose.yml with the stage: its NATS and Redis secrets and its service, as the other stages'. */
export function composeWithStage(text: string, p: StagePlan): string {
  const nats = `  nats-${p.name}: { file: "\${JETMESH_SECRETS}/nats/${p.name}.nk" }`;
  const redis = `  redis-${p.name}: { file: "\${JETMESH_SECRETS}/redis/${p.name}.password" }`;
  const service = [
    `  ${p.name}:`,
    `    build: { context: ., dockerfile: services/${p.name}/Dockerfile }`,
    "    restart: unless-stopped",
    "    environment:",
    "      <<: *stage-env",
    `      REDIS_USERNAME: ${p.name}`,
    `      HTTP_PORT: "${p.port}"`,
    "    depends_on:",
    "      streams: { condition: service_completed_successfully }",
    "      redis-primary: { condition: service_healthy }",
    "    secrets:",
    `      - { source: nats-${p.name}, target: nats.nk }`,
    `      - { source: redis-${p.name}, target: redis.password }`,
  ].join("\n");
  let out = afterLast(text, /^ {2}nats-[a-z0-9-]+: \{ file: .*\.nk" \}$/, nats, COMPOSE_FILE);
  out = afterLast(out, /^ {2}redis-[a-z0-9-]+: \{ file: .*\.password" \}$/, redis, COMPOSE_FILE);
  // the last line of the services: the one before the blank line ahead of `volumes:`
  const end = out.indexOf("\n\nvolumes:\n");
  if (end < 0)
    throw new Error(`${COMPOSE_FILE}: no top-level volumes: after the services; add the stage by hand`);
  return `${out.slice(0, end)}\n${service}${out.slice(end)}`;
}

/** prometheus.yml with a scrape job of the stage's /metrics, after the other services' jobs. */
export function prometheusWithStage(text: string, p: StagePlan): string {
  const job = [
    "",
    `  - job_name: jetmesh-${p.name}`,
    "    metrics_path: /metrics",
    "    dns_sd_configs:",
    `      - names: [${p.name}]`,
    "        type: A",
    `        port: ${p.port}`,
    "        refresh_interval: 30s",
    "    relabel_configs: *service-label",
  ].join("\n");
  const start = text.lastIndexOf("  - job_name: jetmesh-");
  const end = start < 0 ? -1 : text.indexOf("\n\n", start);
  if (end < 0) throw new Error(`${PROMETHEUS_FILE}: no jetmesh- job to add after; add the stage by hand`);
  return `${text.slice(0, end)}\n${job}${text.slice(end)}`;
}

/** Adds the stage to docker-compose.yml and prometheus.yml in `root`; returns the files changed. */
export function addToDeployFiles(root: string, p: StagePlan): string[] {
  const edit = (file: string, f: (text: string, p: StagePlan) => string) =>
    writeFileSync(join(root, file), f(readFileSync(join(root, file), "utf8"), p));
  edit(COMPOSE_FILE, composeWithStage);
  edit(PROMETHEUS_FILE, prometheusWithStage);
  return [COMPOSE_FILE, PROMETHEUS_FILE];
}
