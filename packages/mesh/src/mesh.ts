import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createLogger } from "@jetmesh/stage";
import { provisionStreams } from "@jetmesh/stage/internal";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  bundleOf,
  type ChildHandle,
  type ExitResult,
  freePort,
  type Infra,
  type NatsServerHandle,
  type RedisServerHandle,
  spawnProcess,
  startInfra,
} from "@jetmesh/testkit/local-infra";
import type { ClientEntry, StreamLimits } from "@jetmesh/contracts";
import { currentSchemaSet, registryDocuments, releasedSchemas } from "@jetmesh/contracts/evolution";
import { type MeshApiKeys, writeGatewaySecrets } from "./secrets.ts";
import { type ByService, type ServiceName, ServiceNames, type ServiceSpec, serviceSpec } from "./services.ts";

/** The repository root, found from this file (packages/mesh/src). */
export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Options of {@link startMesh}. */
/**
 * V8 limits of the services whose memory the bench measured (bench/NOTES.md, issue 19): a
 * 4 MB semi-space and a 96 MB old space kept every one of them near 110-116 MB peak RSS over
 * a saturation and a paced run, against 154-214 MB without, at no CPU cost the same run
 * could tell from noise (a 64 MB old space cost 1.15-1.37x CPU). Their live heap is bounded
 * by the in-flight limits; the reconciler's grows with the streams it folds, so it keeps
 * V8's defaults. Their images set the same NODE_OPTIONS (the manifests' deploy.nodeOptions,
 * test/deploy.test.ts compares them), but the ledger's: its image also
 * runs the rebuild check, which folds a whole stream in memory and must not inherit the cap.
 */
export const MEMORY_NODE_OPTIONS: Partial<Record<ServiceName, string>> = Object.fromEntries(
  (["gateway", "validator", "risk", "ledger", "payout"] as const).map((n) => [
    n,
    "--max-semi-space-size=4 --max-old-space-size=96",
  ]),
);

/**
 * The linger of every stage the mesh runs (JETMESH_LINGER_MS; the runtime's default is 0):
 * deliveries arriving within 3 ms of a quiet spell's first are processed in one turn. On the
 * 2-core bench machine, ten runs alternated with and without it (bench/NOTES.md), it raised the
 * pipeline's median saturation from 175 to 194 transfers/s and cut its CPU per transfer at
 * saturation to 0.90x (none at 200/s); the cost is up to 3 ms per hop. docker-compose.yml's
 * stage environment sets the same.
 */
export const MESH_LINGER_MS = "3";

export interface StartMeshOptions {
  /** Repository root the services are started from (default: this checkout). */
  readonly root?: string;
  /** Where logs and the JetStream store go (default `<root>/.mesh`). Wiped at start. */
  readonly dataDir?: string;
  /** Reuse this NATS server when it answers with JetStream; otherwise start one. */
  readonly natsUrl?: string;
  /**
   * The monitoring URL (`http://127.0.0.1:8222`) of the server `natsUrl` names, given to the
   * reconciler as RECONCILE_NATS_MONITOR_URLS. A server the runner starts itself is named
   * there without it.
   */
  readonly natsMonitorUrl?: string;
  /** Reuse this Redis when it answers PING; otherwise start one. */
  readonly redisUrl?: string;
  /** LOG_LEVEL of every service (default `warn`). */
  readonly logLevel?: string;
  /** Environment for every jetmesh service (JETMESH_* settings, for instance). */
  readonly env?: Readonly<Record<string, string>>;
  /** Environment per service, applied last. */
  readonly serviceEnv?: Partial<Readonly<Record<ServiceName, Readonly<Record<string, string>>>>>;
  /** Services to start (default all of them). */
  readonly services?: readonly ServiceName[];
  /** Bank accounts the simulated bank always refuses (`bank:…`). */
  readonly refuseAccounts?: readonly string[];
  /** How long each service may take to answer its readiness probe (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** Remove `dataDir` when the mesh stops (tests; the CLI keeps the logs). */
  readonly removeDataOnStop?: boolean;
  /** Told what happens during start-up (one short line each). */
  readonly onStatus?: (line: string) => void;
  /** More API clients for the gateway's clients file (besides the mesh's operator and customer). */
  readonly clients?: readonly ClientEntry[];
  /**
   * Test only: streams created with these limits instead of their definitions' (the long
   * run shrinks them to go through their capacity in minutes). Services see the streams as
   * created; the contracts and deploy/streams are unchanged.
   */
  readonly streamLimits?: Readonly<Record<string, StreamLimits>>;
  /**
   * The schema registry the deploy step publishes (`registryDocuments` of
   * @jetmesh/contracts/evolution); default this tree's schemas and its last release. A
   * rolling-upgrade test deploys an older release's registry first.
   */
  readonly registry?: ReadonlyMap<string, unknown>;
  /**
   * Test only: a service started from another bundle than its own (an absolute path), an
   * older build during a rolling upgrade (`scripts/build.mjs` `buildVariant`).
   */
  readonly bundles?: Partial<Readonly<Record<ServiceName, string>>>;
  /**
   * Dev isolation: the mesh's streams, buckets and Redis keys in this namespace
   * (JETMESH_NAMESPACE of every service, `namesFor` of @jetmesh/contracts), so that several
   * meshes share one nats-server and Redis. Default: `env.JETMESH_NAMESPACE`, else none.
   */
  readonly namespace?: string;
}

/** Options of {@link MeshHandle.addInstance}. */
export interface AddInstanceOptions {
  /** Run this bundle (an absolute path) instead of the service's own: an older or newer build. */
  readonly bundle?: string;
}

/** One service process of the mesh; keeps its port across restarts. */
export interface MeshService {
  readonly name: ServiceName;
  readonly spec: ServiceSpec;
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Where /healthz, /readyz and /metrics answer (the gateway's ops port; else `url`). */
  readonly opsUrl: string;
  /** Its stdout and stderr, appended across restarts. */
  readonly logFile: string;
  /** The current process, if one was started. */
  readonly child: ChildHandle | undefined;
  /** Starts the process with `env` on top of its own and waits until it is ready. */
  start(env?: Readonly<Record<string, string>>): Promise<void>;
  /** Starts the process without waiting (for one that is meant to crash early). */
  spawn(env?: Readonly<Record<string, string>>): Promise<ChildHandle>;
  /** Resolves once the readiness path answers 200. @throws when the process exits or time runs out. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** SIGTERM (the service drains), SIGKILL after `graceMs` (default 10 s). */
  stop(graceMs?: number): Promise<ExitResult | undefined>;
  /** SIGKILL: a crash. */
  kill(): Promise<ExitResult | undefined>;
  isRunning(): boolean;
  /** The whole log file. */
  log(): Promise<string>;
}

/** A running mesh. */
export interface MeshHandle {
  readonly natsUrl: string;
  /** JETMESH_NAMESPACE of its services; "" for none. */
  readonly namespace: string;
  readonly redisUrl: string;
  readonly gatewayUrl: string;
  readonly bankUrl: string;
  /** The API keys of the mesh's operator (mints, reads every balance) and customer (owns acc-0…acc-999). */
  readonly apiKeys: MeshApiKeys;
  /** The API clients allowed to mint: the checker's M1. */
  readonly minters: readonly string[];
  /** The servers the runner started (absent when an existing one was reused). */
  readonly nats: NatsServerHandle | undefined;
  readonly redis: RedisServerHandle | undefined;
  readonly services: ByService<MeshService>;
  /** The service named `name`. @throws when the catalog has none. */
  service(name: ServiceName): MeshService;
  readonly dataDir: string;
  readonly logDir: string;
  /**
   * Starts one more instance of a service (a stage scales out as more instances on the same
   * durable consumers): the same environment on its own port, output in `<name>-<n>.log`,
   * ready when it returns, stopped with the mesh.
   */
  addInstance(name: ServiceName, opts?: AddInstanceOptions): Promise<MeshService>;
  /** Stops every service (SIGTERM, then SIGKILL) and the servers the runner started. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the mesh: nats-server (JetStream, file store in `dataDir/nats`) and redis-server
 * on free loopback ports unless `natsUrl` / `redisUrl` answer, then every service as its
 * own process (`node services/<name>/dist/main.mjs`, output appended to
 * `dataDir/logs/<name>.log`), and waits for each one's readiness probe. Every process is
 * registered with the testkit, so it dies with this process whatever happens.
 * @throws when a server or a service does not start; what was started is stopped first.
 */
export async function startMesh(opts: StartMeshOptions = {}): Promise<MeshHandle> {
  const root = opts.root ?? repoRoot;
  const dataDir = resolve(opts.dataDir ?? join(root, ".mesh"));
  const logDir = join(dataDir, "logs");
  const status = opts.onStatus ?? (() => {});
  await rm(logDir, { recursive: true, force: true });
  await mkdir(logDir, { recursive: true });
  // The folder is the runner's scratch space; keep it out of git without touching .gitignore.
  await writeFile(join(dataDir, ".gitignore"), "*\n");

  let infra: Infra | undefined;
  let secretsDir: string | undefined;
  const started: MeshService[] = [];
  const stopAll = async () => {
    await Promise.all(started.map((s) => s.stop()));
    await infra?.stop();
    if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
  };
  try {
    infra = await startInfra({
      ...(opts.natsUrl ? { natsUrl: opts.natsUrl } : {}),
      ...(opts.redisUrl ? { redisUrl: opts.redisUrl } : {}),
      storeDir: join(dataDir, "nats"),
      onStatus: status,
    });
    const { natsUrl, redisUrl, nats, redis } = infra;
    const natsMonitorUrl = nats ? `http://127.0.0.1:${nats.monitorPort}` : opts.natsMonitorUrl;
    // The deploy step: every stream from its contract, LEDGER included (no service ever
    // creates LEDGER; each waits for it), as `nats stream add --config deploy/streams/*.json`.
    const replicas = Number(opts.env?.JETMESH_REPLICAS ?? 1);
    const namespace = opts.namespace ?? opts.env?.JETMESH_NAMESPACE ?? "";
    const deployer = await connect({ servers: natsUrl, name: "mesh-deploy" });
    try {
      const created = await provisionStreams(await jetstreamManager(deployer), {
        replicas,
        logger: createLogger({ service: "mesh", level: "warn" }),
        // The schema registry, as `pnpm contracts:publish` publishes it at a deploy: the stages
        // check what they read and write against it at start.
        schemas: opts.registry ?? registryDocuments(currentSchemaSet(), releasedSchemas()),
        ...(opts.streamLimits ? { limits: opts.streamLimits } : {}),
        ...(namespace ? { namespace } : {}),
      });
      if (created.length) status(`streams: created ${created.join(", ")} (replicas ${replicas})`);
    } finally {
      await deployer.close();
    }

    // Secrets live outside the repository (the data folder is inside it), removed at stop.
    secretsDir = await mkdtemp(join(tmpdir(), "jetmesh-mesh-secrets-"));
    const gatewaySecrets = writeGatewaySecrets(join(secretsDir, "gateway"), opts.clients);
    const names = opts.services ?? ServiceNames;
    const ports = new Map<ServiceName, number>();
    for (const n of ServiceNames) ports.set(n, await freePort());
    const opsPorts = new Map<ServiceName, number>();
    for (const n of ServiceNames) if (serviceSpec(n).opsPortEnv) opsPorts.set(n, await freePort());
    const url = (n: ServiceName) => `http://127.0.0.1:${ports.get(n)}`;
    const services: Record<string, MeshService> = {};
    const envs = new Map<ServiceName, Record<string, string>>();
    const extras: MeshService[] = [];
    for (const n of ServiceNames) {
      const spec = serviceSpec(n);
      const port = ports.get(n) as number;
      const opsPort = opsPorts.get(n);
      const base: Record<string, string> = spec.jetmesh
        ? {
            NATS_URL: natsUrl,
            REDIS_URL: redisUrl,
            LOG_LEVEL: opts.logLevel ?? "warn",
            HTTP_HOST: "127.0.0.1",
            [spec.portEnv]: String(port),
            ...(spec.opsPortEnv && opsPort ? { [spec.opsPortEnv]: String(opsPort) } : {}),
            ...(n === "payout" ? { PAYOUT_BANK_URL: url("bank-sim") } : {}),
            // The reconciler exports the server's /healthz and JetStream meta leader (infra alerts).
            ...(n === "reconciler" && natsMonitorUrl ? { RECONCILE_NATS_MONITOR_URLS: natsMonitorUrl } : {}),
            ...(MEMORY_NODE_OPTIONS[n] ? { NODE_OPTIONS: MEMORY_NODE_OPTIONS[n] } : {}),
            JETMESH_LINGER_MS: MESH_LINGER_MS,
            ...(n === "gateway"
              ? {
                  GATEWAY_CLIENTS_FILE: gatewaySecrets.clientsFile,
                  GATEWAY_ID_SECRETS_FILE: gatewaySecrets.idSecretsFile,
                }
              : {}),
            ...opts.env,
            ...(namespace ? { JETMESH_NAMESPACE: namespace } : {}),
          }
        : {
            BANK_HOST: "127.0.0.1",
            BANK_PORT: String(port),
            BANK_REFUSE_ACCOUNTS: (opts.refuseAccounts ?? []).join(","),
          };
      envs.set(n, { ...base, ...opts.serviceEnv?.[n] });
      services[n] = new Service(
        spec,
        port,
        opsPort ?? port,
        root,
        join(logDir, `${n}.log`),
        envs.get(n) as Record<string, string>,
        opts.readyTimeoutMs ?? 60_000,
        opts.bundles?.[n],
      );
    }
    // serviceSpec throws for a name the catalog does not have.
    const wanted = names.map((n) => services[serviceSpec(n).name] as MeshService);
    started.push(...wanted);
    status(`services: starting ${names.join(", ")}`);
    await Promise.all(
      wanted.map(async (s) => {
        await s.start();
        status(`services: ${s.name} ready at ${s.url}`);
      }),
    );
    let stopped: Promise<void> | undefined;
    return {
      natsUrl,
      namespace,
      redisUrl,
      gatewayUrl: url("gateway"),
      bankUrl: url("bank-sim"),
      apiKeys: gatewaySecrets.apiKeys,
      minters: gatewaySecrets.minters,
      nats,
      redis,
      services: services as ByService<MeshService>,
      service: (name) => services[serviceSpec(name).name] as MeshService,
      dataDir,
      logDir,
      async addInstance(name, o = {}) {
        if (stopped) throw new Error("the mesh is stopped");
        const spec = serviceSpec(name);
        const port = await freePort();
        const opsPort = spec.opsPortEnv ? await freePort() : port;
        const index = 2 + extras.filter((x) => x.name === name).length;
        const extra = new Service(
          spec,
          port,
          opsPort,
          root,
          join(logDir, `${name}-${index}.log`),
          {
            ...(envs.get(name) as Record<string, string>),
            [spec.portEnv]: String(port),
            ...(spec.opsPortEnv ? { [spec.opsPortEnv]: String(opsPort) } : {}),
          },
          opts.readyTimeoutMs ?? 60_000,
          o.bundle,
        );
        extras.push(extra);
        await extra.start();
        return extra;
      },
      stop() {
        stopped ??= (async () => {
          await Promise.all([...Object.values(services), ...extras].map((s) => s.stop()));
          await infra?.stop();
          if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
          if (opts.removeDataOnStop) await rm(dataDir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  } catch (err) {
    await stopAll().catch(() => {});
    throw err;
  }
}

class Service implements MeshService {
  readonly url: string;
  readonly opsUrl: string;
  #child: ChildHandle | undefined;

  constructor(
    readonly spec: ServiceSpec,
    readonly port: number,
    opsPort: number,
    private readonly root: string,
    readonly logFile: string,
    private readonly env: Readonly<Record<string, string>>,
    private readonly readyTimeoutMs: number,
    /** Another bundle than the service's own (an absolute path). */
    private readonly bundle?: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.opsUrl = `http://127.0.0.1:${opsPort}`;
  }

  get name(): ServiceName {
    return this.spec.name;
  }

  get child(): ChildHandle | undefined {
    return this.#child;
  }

  isRunning(): boolean {
    return this.#child?.isRunning() ?? false;
  }

  async spawn(extra: Readonly<Record<string, string>> = {}): Promise<ChildHandle> {
    if (this.isRunning()) throw new Error(`${this.name} is already running (pid ${this.#child?.pid})`);
    const env = { ...this.env, ...extra };
    const shown = Object.keys(extra).length ? ` with ${JSON.stringify(extra)}` : "";
    await appendFile(
      this.logFile,
      `--- mesh: starting ${this.name} at ${new Date().toISOString()}${shown} ---\n`,
    );
    // The shell only sets up the redirection, then becomes node (exec): signals reach
    // the service itself, and its output lands in the log file, not in a buffer.
    this.#child = await spawnProcess({
      name: this.name,
      command: "/bin/sh",
      args: [
        "-c",
        'exec "$@" >>"$0" 2>&1',
        this.logFile,
        process.execPath,
        this.bundle ?? bundleOf(this.spec.entry, this.root),
      ],
      cwd: this.root,
      env,
      maxLines: 50,
    });
    return this.#child;
  }

  async start(extra: Readonly<Record<string, string>> = {}): Promise<void> {
    await this.spawn(extra);
    await this.waitReady();
  }

  async waitReady(timeoutMs = this.readyTimeoutMs): Promise<void> {
    const child = this.#child;
    if (!child) throw new Error(`${this.name} was not started`);
    const deadline = Date.now() + timeoutMs;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (!child.isRunning()) {
        const { code, signal } = await child.exited;
        throw new Error(
          `${this.name} exited while starting (code ${code}, signal ${signal})\n--- ${this.logFile} ---\n${await this.#tail()}`,
        );
      }
      try {
        const res = await fetch(`${this.opsUrl}${this.spec.readyPath}`, {
          signal: AbortSignal.timeout(1000),
        });
        await res.arrayBuffer();
        if (res.status === 200) return;
        last = `${this.spec.readyPath} answered ${res.status}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await sleep(100);
    }
    throw new Error(
      `${this.name} not ready within ${timeoutMs} ms (${last})\n--- ${this.logFile} ---\n${await this.#tail()}`,
    );
  }

  async stop(graceMs = 10_000): Promise<ExitResult | undefined> {
    return this.#child?.stop(graceMs);
  }

  async kill(): Promise<ExitResult | undefined> {
    return this.#child?.kill("SIGKILL");
  }

  log(): Promise<string> {
    return readFile(this.logFile, "utf8").catch(() => "");
  }

  async #tail(): Promise<string> {
    return (await this.log()).split("\n").slice(-30).join("\n");
  }
}
