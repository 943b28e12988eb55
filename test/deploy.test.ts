// deploy/ and docker-compose.yml checked statically (no Docker engine here), and the
// stream files checked against a real 3-node nats-server cluster.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_SENTINEL_GROUP, REDIS_USERS, renderSentinelAuth } from "@jetmesh/access";
import { loadCatalog } from "@jetmesh/catalog";
import { Streams, toStreamConfig } from "@jetmesh/contracts";
import { MEMORY_NODE_OPTIONS, MESH_LINGER_MS } from "@jetmesh/mesh";
import { BaseEnv } from "@jetmesh/stage";
import { startNats, startNatsCluster, stopAllProcesses } from "@jetmesh/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ENTRIES } from "../scripts/build.mjs";
import {
  handWritten,
  REDIS_SENTINEL_SERVICES,
  renderServiceDeployFiles,
  SERVICE_DOCKERFILE,
} from "../scripts/deploy-services.ts";
import { renderConsumerFiles, renderStreamFiles } from "../scripts/gen-deploy.ts";

const root = join(import.meta.dirname, "..");
const read = (p: string) => readFileSync(join(root, p), "utf8");
const serviceDirs = readdirSync(join(root, "services")).filter((d) =>
  existsSync(join(root, "services", d, "package.json")),
);
const catalog = loadCatalog();

interface ComposeService {
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  image?: string;
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  ports?: string[];
  secrets?: (string | { source: string; target: string })[];
}

describe("deploy", () => {
  afterAll(() => stopAllProcesses());

  it("deploy - stream files are generated from the contracts' definitions (R3)", () => {
    for (const def of Object.values(Streams)) {
      const file = JSON.parse(read(`deploy/streams/${def.name}.json`));
      expect(file).toEqual(JSON.parse(JSON.stringify(toStreamConfig(def, { replicas: 3 }))));
    }
    expect(readdirSync(join(root, "deploy/streams")).sort()).toEqual(
      Object.values(Streams)
        .map((d) => `${d.name}.json`)
        .sort(),
    );
  });

  it("deploy - a 3-node nats-server cluster accepts every stream file as an R3 stream", async () => {
    const cluster = await startNatsCluster({ size: 3 });
    await cluster.waitForJetStream();
    const nc = await connect({ servers: cluster.urls });
    try {
      const jsm = await jetstreamManager(nc);
      for (const def of Object.values(Streams)) {
        const cfg = JSON.parse(read(`deploy/streams/${def.name}.json`));
        const info = await jsm.streams.add(cfg);
        expect(info.config.num_replicas).toBe(3);
        expect(info.config.discard).toBe("new");
        expect(info.config.duplicate_window).toBe(cfg.duplicate_window);
      }
    } finally {
      await nc.close();
      await cluster.stop();
    }
  }, 90_000);

  it("deploy - consumer files, single-server (R1) stream files and the services' parts of docker-compose.yml and prometheus.yml are current (pnpm gen:deploy)", () => {
    const consumers = renderConsumerFiles();
    expect(readdirSync(join(root, "deploy/consumers")).sort()).toEqual([...consumers.keys()].sort());
    for (const [name, text] of consumers) expect(read(`deploy/consumers/${name}`), name).toBe(text);
    // every durable the services declare is there, the stages' replay durables too
    for (const s of catalog.services)
      for (const i of s.manifest.inputs ?? []) {
        expect(consumers.has(`${i.stream}.${i.durable}.json`)).toBe(true);
        expect(consumers.has(`REPLAY.${i.durable}-replay.json`)).toBe(true);
      }
    const r1 = renderStreamFiles(1);
    expect(readdirSync(join(root, "deploy/streams-r1")).sort()).toEqual([...r1.keys()].sort());
    for (const [name, text] of r1) {
      expect(read(`deploy/streams-r1/${name}`), name).toBe(text);
      expect({ ...JSON.parse(text), num_replicas: 3 }).toEqual(JSON.parse(read(`deploy/streams/${name}`)));
    }
    for (const [file, text] of renderServiceDeployFiles(root)) expect(read(file), file).toBe(text);
  });

  it("deploy - gen:deploy puts a stage that only its own folder declares into docker-compose.yml and Prometheus, and keeps the hand-written parts", () => {
    const dir = mkdtempSync(join(tmpdir(), "jetmesh-gen-deploy-"));
    try {
      for (const name of serviceDirs)
        cpSync(join(root, "services", name, "manifest.json"), join(dir, name, "manifest.json"));
      mkdirSync(join(dir, "probe"));
      const port = {
        name: "http",
        env: "HTTP_PORT",
        default: 18086,
        paths: ["/healthz", "/readyz", "/metrics"],
      };
      writeFileSync(
        join(dir, "probe", "manifest.json"),
        JSON.stringify({
          name: "probe",
          kind: "stage",
          inputs: [{ stream: "LEDGER", durable: "probe", types: ["ledger.posted"] }],
          outputs: [],
          env: { HTTP_HOST: { default: "127.0.0.1" }, HTTP_PORT: { default: 18086 } },
          ports: [port],
        }),
      );
      const files = renderServiceDeployFiles(root, loadCatalog(dir));
      const composeText = files.get("docker-compose.yml")!;
      const compose = parse(composeText, { merge: true }) as {
        services: Record<string, ComposeService>;
        secrets: Record<string, { file: string }>;
      };
      const probe = compose.services.probe!;
      expect(probe.build).toEqual({
        context: ".",
        dockerfile: SERVICE_DOCKERFILE,
        args: {
          SERVICE: "probe",
          HOST_ENV: "HTTP_HOST",
          HEALTH_PORT_ENV: "HTTP_PORT",
          HEALTH_PORT: "18086",
          PORTS: "18086",
        },
      });
      expect(probe.environment).toMatchObject({
        REDIS_USERNAME: "probe",
        HTTP_PORT: "18086",
        JETMESH_PRODUCTION: "true",
      });
      expect(probe.secrets).toEqual([
        { source: "nats-probe", target: "nats.nk" },
        { source: "redis-probe", target: "redis.password" },
      ]);
      expect(compose.secrets["nats-probe"]?.file).toBe(`\${JETMESH_SECRETS}/nats/probe.nk`);
      expect(compose.secrets["redis-probe"]?.file).toBe(`\${JETMESH_SECRETS}/redis/probe.password`);
      // what was there stays: the other services, the cluster, the comments
      expect(Object.keys(compose.services)).toEqual(
        expect.arrayContaining([...serviceDirs, "nats-1", "streams"]),
      );
      expect(handWritten(composeText)).toBe(handWritten(read("docker-compose.yml")));
      const promText = files.get("deploy/observability/prometheus/prometheus.yml")!;
      const prom = parse(promText) as { scrape_configs: { job_name: string; dns_sd_configs?: unknown[] }[] };
      expect(prom.scrape_configs.find((j) => j.job_name === "jetmesh-probe")?.dns_sd_configs).toEqual([
        { names: ["probe"], type: "A", port: 18086, refresh_interval: "30s" },
      ]);
      expect(handWritten(promText)).toBe(handWritten(read("deploy/observability/prometheus/prometheus.yml")));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("deploy - a single nats-server refuses the R3 files, takes the R1 ones, and every consumer file", async () => {
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await expect(jsm.streams.add(JSON.parse(read("deploy/streams/INGRESS.json")))).rejects.toThrow();
      for (const def of Object.values(Streams)) {
        const info = await jsm.streams.add(JSON.parse(read(`deploy/streams-r1/${def.name}.json`)));
        expect(info.config.num_replicas).toBe(1);
      }
      // What `nats consumer add <STREAM> --config <file>` sends: the file as the consumer's config.
      for (const name of readdirSync(join(root, "deploy/consumers"))) {
        const [stream] = name.split(".");
        const cfg = JSON.parse(read(`deploy/consumers/${name}`));
        const info = await jsm.consumers.add(stream as string, cfg);
        expect([info.stream_name, info.name]).toEqual([stream, cfg.durable_name]);
        expect(info.config.filter_subject ?? null).toBe(cfg.filter_subject ?? null);
        expect([info.config.ack_wait, info.config.max_ack_pending, info.config.max_deliver]).toEqual([
          cfg.ack_wait,
          cfg.max_ack_pending,
          -1,
        ]);
      }
    } finally {
      await nc.close();
      await nats.stop();
    }
  }, 60_000);

  it("deploy - docker-compose describes the cluster topology and every service", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
      secrets: Record<string, { file: string }>;
    };
    const s = compose.services;
    // three NATS nodes with their configs, clustered (the routes and their credentials are the
    // generated include; test/nats-access.test.ts routes two nodes from these files), fsync always
    for (const n of ["nats-1", "nats-2", "nats-3"]) {
      expect(s[n]?.image).toMatch(/^nats:2\.1\d\.\d+-alpine$/);
      expect(s[n]?.healthcheck?.test.join(" ")).toContain("/healthz?js-enabled-only=true");
      const conf = read(`deploy/nats/${n}.conf`);
      expect(conf).toMatch(/sync_interval: always/);
      expect(conf).toContain('include "auth/nats-routes.conf"');
    }
    expect(read("deploy/redis/redis-replica.conf")).toMatch(/replicaof redis-primary 6379/);
    expect(s["redis-replica"]).toBeDefined();
    // every service package has a compose service built from the service image, as itself
    for (const dir of serviceDirs) {
      const svc = s[dir];
      expect(svc, `compose service ${dir}`).toBeDefined();
      expect(svc!.build?.dockerfile).toBe(SERVICE_DOCKERFILE);
      expect(svc!.build?.args?.SERVICE, `${dir} image`).toBe(dir);
      expect(existsSync(join(root, svc!.build!.dockerfile)), `${dir} Dockerfile`).toBe(true);
      const manifest = JSON.parse(read(`services/${dir}/manifest.json`)) as { env: Record<string, unknown> };
      // a key is documented by the service's manifest or, for runtime keys, by @jetmesh/stage
      const documented = [...Object.keys(manifest.env), ...(dir === "bank-sim" ? [] : Object.keys(BaseEnv))];
      for (const key of Object.keys(svc!.environment ?? {})) {
        expect(documented, `${dir} documents ${key}`).toContain(key);
      }
      if (dir !== "bank-sim") {
        const env = svc!.environment!;
        expect(env.NATS_URL!.split(",")).toHaveLength(3);
        expect(env.JETMESH_PRODUCTION).toBe("true");
        expect(env.JETMESH_REPLICAS).toBe("3");
        expect(env.JETMESH_SYNC_WRITES).toBe("true");
        // the linger the mesh runs its stages with (bench/NOTES.md)
        expect(env.JETMESH_LINGER_MS, `${dir} linger`).toBe(MESH_LINGER_MS);
      }
    }
    // the bank simulator stands for a system we do not own: it imports no jetmesh package
    const bankPkg = JSON.parse(read("services/bank-sim/package.json"));
    expect(Object.keys({ ...bankPkg.dependencies }).filter((d) => d.startsWith("@jetmesh/"))).toEqual([]);
    // volumes referenced from deploy/ exist; secrets come from outside the repository
    for (const svc of Object.values(s)) {
      for (const v of svc.volumes ?? []) {
        const src = v.split(":")[0]!;
        if (src.startsWith("./")) expect(existsSync(join(root, src)), src).toBe(true);
        else if (src.includes("/"))
          expect(src, "a mounted file outside deploy/ is a secret").toMatch(/^\$\{JETMESH_SECRETS/);
      }
    }
    for (const [name, secret] of Object.entries(compose.secrets))
      expect(secret.file, name).toMatch(/^\$\{JETMESH_SECRETS\}\//);
  });

  it("deploy - every service folder is in the catalog, and scripts/build.mjs bundles what each manifest names", () => {
    expect([...catalog.names].sort()).toEqual([...serviceDirs].sort());
    for (const s of catalog.services) expect(ENTRIES[s.name], s.name).toEqual(s.bundles);
  });

  it("deploy - docker-compose runs exactly the catalog's services, on their manifests' ports", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
      secrets: Record<string, { file: string }>;
    };
    const built = Object.entries(compose.services)
      .filter(([, svc]) => svc.build?.dockerfile === SERVICE_DOCKERFILE)
      .map(([name, svc]) => {
        expect(svc.build?.args?.SERVICE, name).toBe(name);
        return name;
      });
    expect(built.sort()).toEqual([...catalog.names].sort());
    for (const s of catalog.services) {
      const svc = compose.services[s.name]!;
      expect(svc.build?.dockerfile, s.name).toBe(SERVICE_DOCKERFILE);
      expect(svc.environment?.[s.portEnv], `${s.name} ${s.portEnv}`).toBe(String(s.port));
      if (s.opsPortEnv) {
        const ops = s.manifest.ports?.find((p) => p.env === s.opsPortEnv);
        expect(svc.environment?.[s.opsPortEnv], `${s.name} ${s.opsPortEnv}`).toBe(String(ops?.default));
      }
      if (!s.jetmesh) continue;
      // a stage waits for the streams the deploy step creates and for the sentinels it finds
      // Redis through, and has its NATS and Redis user
      expect(svc.depends_on, s.name).toMatchObject({
        streams: { condition: "service_completed_successfully" },
        "redis-sentinel-1": { condition: "service_healthy" },
        "redis-sentinel-2": { condition: "service_healthy" },
        "redis-sentinel-3": { condition: "service_healthy" },
      });
      for (const secret of [`nats-${s.name}`, `redis-${s.name}`])
        expect(compose.secrets[secret], `${s.name} secret ${secret}`).toBeDefined();
    }
  });

  it("deploy - every image in docker-compose is pinned, every server and service has a healthcheck, and starts wait on them", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
    };
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.image) expect(svc.image, name).toMatch(/:v?\d+\.\d+\.\d+(-[a-z]+)?$/);
      const isServer = /^(nats-\d|redis-)/.test(name);
      if (isServer) expect(svc.healthcheck?.test.length, `${name} healthcheck`).toBeGreaterThan(0);
      if (svc.build) expect(read(svc.build.dockerfile), `${name} HEALTHCHECK`).toMatch(/^HEALTHCHECK /m);
    }
    const deps = compose.services.streams?.depends_on as Record<string, { condition: string }>;
    expect(Object.keys(deps).sort()).toEqual(["nats-1", "nats-2", "nats-3"]);
    for (const d of Object.values(deps)) expect(d.condition).toBe("service_healthy");
    expect(compose.services.payout?.depends_on).toMatchObject({
      "bank-sim": { condition: "service_healthy" },
    });
  });

  it("deploy - three sentinels watch the Redis pair with deploy/redis/sentinel.conf, and every service finds the primary through them", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
      secrets: Record<string, { file: string }>;
      volumes: Record<string, unknown>;
    };
    const s = compose.services;
    const conf = read("deploy/redis/sentinel.conf").replace(/#.*$/gm, "");
    const port = Number(/^port (\d+)$/m.exec(conf)?.[1]);
    const monitor = /^sentinel monitor (\S+) (\S+) (\d+) (\d+)$/m.exec(conf);
    expect(monitor, "sentinel monitor").not.toBeNull();
    const [, group, host, hostPort, quorum] = monitor as unknown as string[];
    // the pair by its compose names (resolved, and announced: a recreated container is found)
    expect([host, Number(hostPort)]).toEqual(["redis-primary", 6379]);
    expect(read("deploy/redis/redis-primary.conf")).toMatch(/^replica-announce-ip redis-primary$/m);
    expect(read("deploy/redis/redis-replica.conf")).toMatch(/^replica-announce-ip redis-replica$/m);
    const lines = conf.split("\n").map((l) => l.trim());
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/^sentinel resolve-hostnames yes$/)).toBeGreaterThanOrEqual(0);
    expect(at(/^sentinel resolve-hostnames yes$/)).toBeLessThan(at(/^sentinel monitor /));
    expect(at(/^sentinel announce-hostnames yes$/)).toBeGreaterThanOrEqual(0);
    // the include names the group: after `sentinel monitor`, for the group jetmesh-access writes
    expect(at(/^include /)).toBeGreaterThan(at(/^sentinel monitor /));
    expect(group).toBe(DEFAULT_SENTINEL_GROUP);
    // a majority of the three decides
    expect(Number(quorum)).toBe(Math.floor(REDIS_SENTINEL_SERVICES.length / 2) + 1);
    for (const r of REDIS_SENTINEL_SERVICES) {
      const svc = s[r]!;
      expect(svc.image, r).toBe(s["redis-primary"]?.image);
      expect(svc.healthcheck?.test.join(" "), r).toContain(`-p ${port} ping`);
      expect(svc.depends_on, r).toEqual({
        "redis-primary": { condition: "service_healthy" },
        "redis-replica": { condition: "service_healthy" },
      });
      // a writable copy in its own volume (a sentinel rewrites its file), started as a sentinel
      expect(svc.volumes, r).toEqual([
        "./deploy/redis/sentinel.conf:/etc/redis/sentinel.conf:ro",
        `${r}:/data`,
      ]);
      expect(compose.volumes).toHaveProperty(r);
      const script = [...(svc.entrypoint ?? []), ...(svc.command ?? [])].join(" ");
      expect(script).toContain(
        "test -f /data/sentinel.conf || cp /etc/redis/sentinel.conf /data/sentinel.conf",
      );
      expect(script).toMatch(/exec docker-entrypoint\.sh redis-server \/data\/sentinel\.conf --sentinel$/);
    }
    expect(compose.secrets["redis-sentinel-auth"]?.file).toBe(`\${JETMESH_SECRETS}/redis/sentinel-auth.conf`);
    // Every line of the generated include that a sentinel's rewrite copies into its file is
    // dropped before the next start, so a rotated include wins over the copy's old passwords.
    const script = (s["redis-sentinel-1"]?.command ?? []).join(" ");
    const strip = /sed -i -E '\/([^']+)\/d' \/data\/sentinel\.conf/.exec(script)?.[1];
    expect(strip, "the sed that drops the copied credentials").toBeDefined();
    const passwords = new Map(REDIS_USERS.map((u) => [u.user, `pw-${u.user}`]));
    const generated = renderSentinelAuth(REDIS_USERS, passwords, DEFAULT_SENTINEL_GROUP)
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    expect(generated.length).toBeGreaterThan(4);
    for (const l of generated) expect(l, "dropped before a start").toMatch(new RegExp(strip!));
    for (const kept of [
      "sentinel monitor jetmesh 10.0.0.7 6379 2",
      "sentinel known-replica jetmesh 10.0.0.8 6379",
    ])
      expect(kept).not.toMatch(new RegExp(strip!));
    // every jetmesh service: the three sentinels, the group they monitor
    for (const c of catalog.services.filter((x) => x.jetmesh)) {
      const env = s[c.name]!.environment!;
      expect(env.REDIS_SENTINELS?.split(","), c.name).toEqual(
        REDIS_SENTINEL_SERVICES.map((r) => `${r}:${port}`),
      );
      expect(env.REDIS_SENTINEL_NAME, c.name).toBe(group);
    }
  });

  it("deploy - Prometheus scrapes /metrics of exactly the catalog's services that serve it, on that port", () => {
    const prom = parse(read("deploy/observability/prometheus/prometheus.yml"), { merge: true }) as {
      scrape_configs: {
        job_name: string;
        metrics_path?: string;
        dns_sd_configs?: { names: string[]; port: number }[];
      }[];
    };
    const jobs = prom.scrape_configs.filter((j) => j.job_name.startsWith("jetmesh-"));
    const expected = catalog.services.filter((s) => s.metricsPort !== undefined);
    expect(jobs.map((j) => j.job_name).sort()).toEqual(expected.map((s) => `jetmesh-${s.name}`).sort());
    for (const s of expected) {
      const job = jobs.find((j) => j.job_name === `jetmesh-${s.name}`)!;
      expect(job.metrics_path ?? "/metrics").toBe("/metrics");
      expect(job.dns_sd_configs, s.name).toEqual([
        expect.objectContaining({ names: [s.name], port: s.metricsPort }),
      ]);
    }
  });

  it("deploy - no listener without authentication: NATS clients, routes and monitoring, Redis, the API", () => {
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
    };
    const s = compose.services;
    for (const n of ["nats-1", "nats-2", "nats-3"]) {
      const conf = read(`deploy/nats/${n}.conf`).replace(/#.*$/gm, "");
      // clients: the generated accounts and users, and no user for a connection without credentials
      expect(conf).toContain('include "auth/nats-auth.conf"');
      expect(conf).not.toMatch(/no_auth_user/);
      // monitoring answers without authentication in 2.9/2.10: loopback only, and not published
      expect(conf).toMatch(/^http: 127\.0\.0\.1:8222$/m);
      expect(s[n]?.ports ?? []).not.toContain("8222:8222");
      // routes: the include carries the route credentials (a route without them is refused)
      expect(conf).toMatch(/cluster \{[^}]*include "auth\/nats-routes\.conf"/s);
    }
    for (const r of ["redis-primary", "redis-replica"]) {
      const conf = read(`deploy/redis/${r}.conf`).replace(/#.*$/gm, "");
      expect(conf).toMatch(/^aclfile \/run\/secrets\/redis-acl$/m);
      expect(conf).toMatch(/^protected-mode yes$/m);
      expect(conf).not.toMatch(/nopass|^requirepass/m);
      expect(s[r]?.secrets).toEqual(expect.arrayContaining(["redis-acl", "redis-replica-auth"]));
    }
    // the sentinels: their users (default off) and credentials are the generated include, no requirepass
    const sentinelConf = read("deploy/redis/sentinel.conf").replace(/#.*$/gm, "");
    expect(sentinelConf).toMatch(/^include \/run\/secrets\/redis-sentinel-auth$/m);
    expect(sentinelConf).not.toMatch(/nopass|requirepass|^user /m);
    for (const r of REDIS_SENTINEL_SERVICES) expect(s[r]?.secrets, r).toEqual(["redis-sentinel-auth"]);
    const secretTargets = (svc: ComposeService) =>
      (svc.secrets ?? []).map((x) => (typeof x === "string" ? x : x.target));
    for (const dir of serviceDirs.filter((d) => d !== "bank-sim")) {
      const svc = s[dir]!;
      const env = svc.environment!;
      // every stage authenticates to NATS with its own NKey and to Redis as its own ACL user
      expect(env.NATS_NKEY_SEED_FILE, dir).toBe("/run/secrets/nats.nk");
      expect(env.REDIS_USERNAME, dir).toBe(dir);
      expect(env.REDIS_PASSWORD_FILE, dir).toBe("/run/secrets/redis.password");
      // and to the sentinels as the same user, with the same password (jetmesh-access gives it both)
      expect(env.REDIS_SENTINEL_USERNAME, dir).toBe(dir);
      expect(env.REDIS_SENTINEL_PASSWORD_FILE, dir).toBe("/run/secrets/redis.password");
      expect(secretTargets(svc), dir).toEqual(expect.arrayContaining(["nats.nk", "redis.password"]));
      expect(svc.secrets, dir).toEqual(
        expect.arrayContaining([
          { source: `nats-${dir}`, target: "nats.nk" },
          { source: `redis-${dir}`, target: "redis.password" },
        ]),
      );
    }
    // the API needs clients; only the API port is published, never the ops port
    const gw = s.gateway!;
    expect(gw.environment?.GATEWAY_CLIENTS_FILE).toBe("/run/secrets/gateway-clients.json");
    expect(gw.environment?.GATEWAY_ID_SECRETS_FILE).toBe("/run/secrets/gateway-id-secrets.json");
    expect(gw.environment?.GATEWAY_ACCEPT_UNTIMED_KEYS).toBe("false");
    expect(gw.ports).toEqual([`${gw.environment?.GATEWAY_PORT}:${gw.environment?.GATEWAY_PORT}`]);
    // the stream bootstrap authenticates as the deploy user
    expect(JSON.stringify(s.streams)).toContain("--nkey /run/secrets/nats.nk");
  });

  it("deploy - every service image is built in two stages and runs only its own bundle with plain node", () => {
    const ignored = read(".dockerignore").split("\n");
    // a checkout's node_modules (links into this machine's store) and bundles stay out of the context
    expect(ignored).toEqual(expect.arrayContaining(["**/node_modules", "**/dist"]));
    const dockerfile = read(SERVICE_DOCKERFILE);
    expect(dockerfile).not.toMatch(/tsx/);
    const stages = dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith("FROM "));
    expect(stages).toHaveLength(2);
    const [build, runtime] = stages as [string, string];
    // build stage: the locked dependencies of the service (its package is @jetmesh/<SERVICE>, checked
    // below) with the pnpm of the root's packageManager, the workspace packages, its bundle
    const built = lines(build);
    expect(built[0]).toBe("FROM node:24.21.0-bookworm-slim AS build");
    const pnpm = (JSON.parse(read("package.json")) as { packageManager: string }).packageManager;
    expect(built).toContain(`RUN npm i -g ${pnpm}`);
    expect(built).toContain("RUN pnpm fetch");
    expect(built).toContain(
      `RUN pnpm install --offline --frozen-lockfile --filter "@jetmesh/\${SERVICE}..."`,
    );
    expect(built).toContain("COPY scripts/build.mjs scripts/");
    // the workspace packages, the catalog's reader among them (build.mjs reads the bundles
    // from the manifest through it), and the service's folder alone of services/
    expect(built).toContain("COPY packages packages");
    expect(existsSync(join(root, "packages/catalog/src/read.mjs"))).toBe(true);
    expect(built.filter((l) => l.startsWith("COPY services"))).toEqual([
      `COPY services/\${SERVICE} services/\${SERVICE}`,
    ]);
    expect(built.filter((l) => l.startsWith("RUN node "))).toEqual(['RUN node scripts/build.mjs "$SERVICE"']);
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, ComposeService>;
    };
    for (const dir of serviceDirs) {
      const pkg = JSON.parse(read(`services/${dir}/package.json`)) as {
        name: string;
        scripts: Record<string, string>;
        dependencies?: Record<string, string>;
      };
      expect(pkg.name, `${dir} package`).toBe(`@jetmesh/${dir}`);
      expect(pkg.scripts.start, `${dir} start`).toBe("node dist/main.mjs");
      expect(pkg.scripts.build, `${dir} build`).toBe(`node ../../scripts/build.mjs ${dir}`);
      expect(ENTRIES[dir], `scripts/build.mjs bundles ${dir}`).toContain(`services/${dir}/src/main.ts`);
      // the ledger's rebuild check ships in the same image, bundled too
      if (pkg.scripts.rebuild) {
        expect(pkg.scripts.rebuild).toBe("node dist/rebuild.mjs");
        expect(ENTRIES[dir]).toContain(`services/${dir}/src/rebuild.ts`);
      }
      for (const dep of Object.keys(pkg.dependencies ?? {}).filter((d) => d.startsWith("@jetmesh/")))
        expect(existsSync(join(root, "packages", dep.slice("@jetmesh/".length), "package.json")), dep).toBe(
          true,
        );

      // runtime stage, as docker-compose.yml's build arguments make it: node and the service's
      // dist/ alone, started as its package's start script
      const svc = compose.services[dir]!;
      const image = runtimeImage(runtime, svc.build?.args ?? {});
      expect(image.from).toBe("FROM node:24.21.0-bookworm-slim");
      expect(image.copy).toEqual([`COPY --from=build /app/services/${dir}/dist dist`]);
      // nothing runs in the image but making the folders of its volumes (the bank's /data for
      // its state file), owned by the user it runs as
      expect(image.run).toEqual([
        'RUN for d in $VOLUME_DIRS; do mkdir -p "$d" && chown node:node "$d"; done',
      ]);
      const mounts = (svc.volumes ?? []).map((v) => v.split(":")[1]);
      expect((image.args.VOLUME_DIRS ?? "").split(" ").filter(Boolean), `${dir} volume folders`).toEqual(
        mounts,
      );
      expect(image.last).toBe('CMD ["node","dist/main.mjs"]');
      // an unprivileged user, and a HEALTHCHECK on the service's own /healthz, on the port that
      // serves it (a variable: the value the container starts with)
      expect(image.user, `${dir} user`).toBe("node");
      expect(image.healthcheck, `${dir} healthcheck`).toMatch(
        /^HEALTHCHECK .* CMD \["node","-e","fetch\('http:\/\/127\.0\.0\.1:'\+process\.env\[process\.env\.HEALTHCHECK_PORT_ENV\]\+'\/healthz'\)/,
      );
      const ports = catalog.service(dir).manifest.ports ?? [];
      const health = ports.find((p) => p.paths?.includes("/healthz"));
      expect(image.env.HEALTHCHECK_PORT_ENV, `${dir} health port`).toBe(health?.env);
      expect(image.env[health!.env], `${dir} sets its port`).toBe(String(health?.default));
      expect(image.expose, `${dir} exposes its ports`).toEqual(ports.map((p) => String(p.default)));
      // it listens on every interface, by the variable its manifest documents
      const host = Object.entries(image.env).find(([, v]) => v === "0.0.0.0")?.[0];
      expect(Object.keys(catalog.service(dir).manifest.env ?? {}), `${dir} host`).toContain(host);
      // V8 memory limits: those the mesh runs the service with (bench/NOTES.md), but the
      // ledger's, whose image also runs the rebuild check over a whole stream
      const memory =
        dir === "ledger" ? undefined : MEMORY_NODE_OPTIONS[dir as keyof typeof MEMORY_NODE_OPTIONS];
      expect(image.env.NODE_OPTIONS, `${dir} NODE_OPTIONS`).toBe(memory ?? "");
    }
    expect(read("docker-compose.yml")).not.toMatch(/tsx/);
  });

  it("deploy - no service imports another service or a deep path of a package", () => {
    // A package's own faces (its package.json `exports`: `@jetmesh/stage/testing`) are not deep.
    const faces = new Set<string>();
    for (const dir of readdirSync(join(root, "packages"))) {
      const pkg = JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")) as {
        name: string;
        exports?: Record<string, string>;
      };
      for (const sub of Object.keys(pkg.exports ?? {}))
        if (sub !== ".") faces.add(`${pkg.name}/${sub.slice(2)}`);
    }
    const offenders: string[] = [];
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.name === "node_modules" ? [] : e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
      );
    for (const dir of serviceDirs) {
      for (const file of walk(join(root, "services", dir, "src")).filter((f) => f.endsWith(".ts"))) {
        const text = readFileSync(file, "utf8");
        for (const m of text.matchAll(/from\s+"([^"]+)"/g)) {
          const spec = m[1]!;
          const otherService = serviceDirs.some(
            (o) => o !== dir && (spec === `@jetmesh/${o}` || spec.includes(`services/${o}`)),
          );
          const deep = /^@jetmesh\/[^/]+\/.+/.test(spec) && !faces.has(spec);
          const testOnly = file.endsWith(".test.ts");
          if ((otherService && !testOnly) || deep) offenders.push(`${file}: ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});

/** A Dockerfile stage's instructions: comments and blank lines dropped, continued lines joined. */
function lines(stage: string): string[] {
  return stage
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"));
}

/**
 * The runtime stage as `docker build` makes it with these build arguments, read statically (no
 * Docker engine here): ARG defaults and ${VAR} substituted where Docker substitutes them (ARG,
 * ENV keys and values, EXPOSE, COPY, USER); RUN and CMD as written, run by a shell and node.
 */
function runtimeImage(stage: string, given: Record<string, string>) {
  const vars: Record<string, string> = {};
  const args: Record<string, string> = {};
  const sub = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, v: string) => vars[v] ?? "");
  const image = {
    from: "",
    args,
    env: {} as Record<string, string>,
    expose: [] as string[],
    copy: [] as string[],
    run: [] as string[],
    user: "",
    healthcheck: "",
    last: "",
  };
  for (const line of lines(stage)) {
    const [, op = "", rest = ""] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (op === "FROM") image.from = line;
    else if (op === "ARG") {
      const [name = "", fallback] = rest.split(/=(.*)/s);
      args[name] = vars[name] = given[name] ?? sub(fallback ?? "");
    } else if (op === "ENV")
      for (const m of rest.matchAll(/(\S+?)=(?:"([^"]*)"|(\S*))/g)) {
        const key = sub(m[1] as string);
        image.env[key] = vars[key] = sub(m[2] ?? m[3] ?? "");
      }
    else if (op === "EXPOSE") image.expose.push(...sub(rest).split(/\s+/).filter(Boolean));
    else if (op === "COPY") image.copy.push(sub(line));
    else if (op === "RUN") image.run.push(line);
    else if (op === "USER") image.user = sub(rest);
    else if (op === "HEALTHCHECK") image.healthcheck = line;
    image.last = line;
  }
  return image;
}
