// The per-service parts of docker-compose.yml and of Prometheus's scrape jobs, written from the
// catalog (each services/<name>/manifest.json: its ports, whether it speaks NATS, its `deploy`
// section). The rest of both files is written by hand (the cluster, Redis, the streams job,
// observability, the comments): `pnpm gen:deploy` rewrites only the lines between a
// `# BEGIN gen:deploy <part>` line and its `# END gen:deploy <part>`, and test/deploy.test.ts
// fails when they differ from what it would write. Every service is built from the one
// parameterised image, deploy/docker/Dockerfile.service, with the build arguments below.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Catalog, type CatalogService, loadCatalog } from "@jetmesh/catalog";

export const COMPOSE_FILE = "docker-compose.yml";
export const PROMETHEUS_FILE = "deploy/observability/prometheus/prometheus.yml";
export const SERVICE_DOCKERFILE = "deploy/docker/Dockerfile.service";

/** A YAML scalar: plain where YAML reads it back as the same string, double-quoted otherwise. */
function scalar(v: string): string {
  const plain =
    /^[A-Za-z/_.][A-Za-z0-9_./:@-]*$/.test(v) &&
    !/:$/.test(v) &&
    !/^(true|false|yes|no|on|off|null|y|n)$/i.test(v) &&
    !/^\.(inf|nan)$/i.test(v);
  return plain ? v : JSON.stringify(v);
}

const flow = (entries: Record<string, string>) =>
  `{ ${Object.entries(entries)
    .map(([k, v]) => `${k}: ${scalar(v)}`)
    .join(", ")} }`;

const mapping = (entries: Record<string, string>, indent: string) =>
  Object.entries(entries).map(([k, v]) => `${indent}${k}: ${scalar(v)}`);

/**
 * The Redis sentinels of docker-compose.yml (written by hand there): a jetmesh service finds the
 * primary through them (REDIS_SENTINELS in *stage-env) and starts once they answer.
 */
export const REDIS_SENTINEL_SERVICES = ["redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"] as const;

/** The port its /healthz answers on: the first that lists it, else its first port. */
function healthPort(s: CatalogService) {
  const ports = s.manifest.ports ?? [];
  return (ports.find((p) => p.paths?.includes("/healthz")) ?? ports[0]) as (typeof ports)[number];
}

/** The variable it reads its listen address from (HTTP_HOST, the bank's BANK_HOST). */
function hostEnv(s: CatalogService): string {
  return Object.keys(s.manifest.env ?? {}).find((k) => /^[A-Z0-9]+_HOST$/.test(k)) ?? "HTTP_HOST";
}

/** The build arguments of a service's image (deploy/docker/Dockerfile.service). */
export function imageArgs(s: CatalogService): Record<string, string> {
  const deploy = s.manifest.deploy ?? {};
  const health = healthPort(s);
  const dirs = (deploy.volumes ?? []).map((v) => v.split(":")[1] as string);
  return {
    SERVICE: s.name,
    HOST_ENV: hostEnv(s),
    HEALTH_PORT_ENV: health.env,
    HEALTH_PORT: String(health.default),
    PORTS: (s.manifest.ports ?? []).map((p) => p.default).join(" "),
    ...(deploy.nodeOptions ? { NODE_OPTIONS: deploy.nodeOptions } : {}),
    ...(dirs.length ? { VOLUME_DIRS: dirs.join(" ") } : {}),
  };
}

/** One compose service, as lines without indentation. */
function composeService(s: CatalogService): string[] {
  const deploy = s.manifest.deploy ?? {};
  const ports = s.manifest.ports ?? [];
  const environment = {
    // a jetmesh service takes its listen address from the stage settings (*stage-env); it logs
    // in to Redis and to the sentinels as its own user (jetmesh-access redis gives it both)
    ...(s.jetmesh
      ? { REDIS_USERNAME: s.name, REDIS_SENTINEL_USERNAME: s.name }
      : { [hostEnv(s)]: "0.0.0.0" }),
    ...Object.fromEntries(ports.map((p) => [p.env, String(p.default)])),
    ...deploy.environment,
  };
  const secrets = [
    ...(s.jetmesh
      ? [
          { source: `nats-${s.name}`, target: "nats.nk" },
          { source: `redis-${s.name}`, target: "redis.password" },
        ]
      : []),
    ...Object.entries(deploy.secrets ?? {}).map(([source, x]) => ({ source, target: x.target })),
  ];
  const dependsOn: Record<string, string> = {
    ...(s.jetmesh
      ? {
          streams: "service_completed_successfully",
          ...Object.fromEntries(REDIS_SENTINEL_SERVICES.map((r) => [r, "service_healthy"])),
        }
      : {}),
    ...Object.fromEntries((deploy.dependsOn ?? []).map((d) => [d, "service_healthy"])),
  };
  const published = (deploy.publish ?? []).map((env) => {
    const port = ports.find((p) => p.env === env);
    if (!port) throw new Error(`services/${s.name}/manifest.json: deploy.publish names ${env}, not a port`);
    return `"${port.default}:${port.default}"`;
  });
  return [
    `${s.name}:`,
    "  build:",
    "    context: .",
    `    dockerfile: ${SERVICE_DOCKERFILE}`,
    "    args:",
    ...mapping(imageArgs(s), "      "),
    "  restart: unless-stopped",
    "  environment:",
    ...(s.jetmesh ? ["    <<: *stage-env"] : []),
    ...mapping(environment, "    "),
    ...(secrets.length ? ["  secrets:", ...secrets.map((x) => `    - ${flow(x)}`)] : []),
    ...(published.length ? [`  ports: [${published.join(", ")}]`] : []),
    ...(Object.keys(dependsOn).length
      ? [
          "  depends_on:",
          ...Object.entries(dependsOn).map(([d, condition]) => `    ${d}: ${flow({ condition })}`),
        ]
      : []),
    ...(deploy.volumes?.length ? [`  volumes: [${deploy.volumes.map((v) => `"${v}"`).join(", ")}]`] : []),
  ];
}

/** The compose secrets the services read: each jetmesh service's NATS seed and Redis password, then its own. */
export function composeSecrets(c: Catalog): string[] {
  const file = (path: string) => flow({ file: `\${JETMESH_SECRETS}/${path}` });
  return c.services.flatMap((s) => [
    ...(s.jetmesh
      ? [
          `nats-${s.name}: ${file(`nats/${s.name}.nk`)}`,
          `redis-${s.name}: ${file(`redis/${s.name}.password`)}`,
        ]
      : []),
    ...Object.entries(s.manifest.deploy?.secrets ?? {}).map(([name, x]) => `${name}: ${file(x.file)}`),
  ]);
}

/** Every service of the catalog as a compose service, in catalog order, a blank line between. */
export function composeServices(c: Catalog): string[] {
  return c.services.flatMap((s, i) => [...(i ? [""] : []), ...composeService(s)]);
}

/** The named volumes the services mount. */
export function composeVolumes(c: Catalog): string[] {
  const names = c.services.flatMap((s) => (s.manifest.deploy?.volumes ?? []).map((v) => v.split(":")[0]));
  return [...new Set(names)].map((n) => `${n}: {}`);
}

/** A scrape job of /metrics per service that serves it, found by DNS on the port serving it. */
export function scrapeJobs(c: Catalog): string[] {
  return c.services
    .filter((s) => s.metricsPort !== undefined)
    .flatMap((s, i) => [
      ...(i ? [""] : []),
      `- job_name: jetmesh-${s.name}`,
      "  metrics_path: /metrics",
      "  dns_sd_configs:",
      `    - names: [${s.name}]`,
      "      type: A",
      `      port: ${s.metricsPort}`,
      "      refresh_interval: 30s",
      "  relabel_configs:",
      "    - source_labels: [job]",
      "      regex: jetmesh-(.+)",
      "      target_label: service",
    ]);
}

/**
 * `text` with the lines between `# BEGIN gen:deploy <part>` and `# END gen:deploy <part>`
 * replaced by `lines`, indented as the BEGIN line.
 * @throws naming the file and the part when either marker is missing.
 */
export function replaceGenerated(text: string, file: string, part: string, lines: readonly string[]): string {
  const all = text.split("\n");
  const begin = all.findIndex((l) => l.trim() === `# BEGIN gen:deploy ${part}`);
  const end = all.findIndex((l, i) => i > begin && l.trim() === `# END gen:deploy ${part}`);
  if (begin < 0 || end < 0)
    throw new Error(
      `${file}: no "# BEGIN gen:deploy ${part}" ... "# END gen:deploy ${part}" lines; put them back where the ${part} go`,
    );
  const indent = /^ */.exec(all[begin] as string)?.[0] ?? "";
  const body = lines.map((l) => (l ? indent + l : l));
  return [...all.slice(0, begin + 1), ...body, ...all.slice(end)].join("\n");
}

/** `text` without its generated parts (each BEGIN and END line kept): what is written by hand. */
export function handWritten(text: string): string {
  return text.replace(/(# BEGIN gen:deploy (.+)\n)[\s\S]*?( *# END gen:deploy \2)/g, "$1$3");
}

/** docker-compose.yml and prometheus.yml under `root` with their generated parts current: path → text. */
export function renderServiceDeployFiles(root: string, c: Catalog = loadCatalog()): Map<string, string> {
  const read = (file: string) => readFileSync(join(root, file), "utf8");
  let compose = read(COMPOSE_FILE);
  compose = replaceGenerated(compose, COMPOSE_FILE, "secrets", composeSecrets(c));
  compose = replaceGenerated(compose, COMPOSE_FILE, "services", composeServices(c));
  compose = replaceGenerated(compose, COMPOSE_FILE, "volumes", composeVolumes(c));
  const prometheus = replaceGenerated(read(PROMETHEUS_FILE), PROMETHEUS_FILE, "scrape jobs", scrapeJobs(c));
  return new Map([
    [COMPOSE_FILE, compose],
    [PROMETHEUS_FILE, prometheus],
  ]);
}
