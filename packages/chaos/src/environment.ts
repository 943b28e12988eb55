import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type MeshHandle,
  type MeshService,
  REFUSED_BANK_ACCOUNTS,
  type ServiceName,
  startMesh,
} from "@jetmesh/mesh";
import {
  type FaultProxy,
  type NatsClusterHandle,
  type NatsServerHandle,
  type RedisServerHandle,
  startFaultProxy,
  startInfra,
} from "@jetmesh/testkit/local-infra";
import { type BankLink, startBankLink } from "./bank-link.ts";
import { type Instance, meshInstance } from "./instances.ts";
import { type StageService, StageServices } from "./stages.ts";

/**
 * The mesh as a chaos scenario needs it: the chaos runner owns nats-server (or a cluster)
 * and redis-server, so it can kill and restart them on the same store, and hands their
 * URLs to `startMesh`, which starts the bank and the services as processes. Optionally
 * every jetmesh service talks to NATS and Redis through its own pair of testkit fault
 * proxies, a stage runs as more than one instance, and the payout reaches the bank through
 * a link the runner controls. A supervisor restarts a service that died without being told
 * to (as a process manager would) and counts it.
 */

export { type StageService, StageServices } from "./stages.ts";

/** Options of {@link startChaosEnv}. */
export interface ChaosEnvOptions {
  /** One nats-server, or a three-node cluster (services get the comma-joined URL). */
  readonly topology: "single" | "cluster";
  /** Put a NATS and a Redis fault proxy between each jetmesh service and the servers. */
  readonly proxies?: boolean;
  /** Environment of every jetmesh service. */
  readonly env?: Readonly<Record<string, string>>;
  /** Environment per service, applied last. */
  readonly serviceEnv?: Partial<Readonly<Record<ServiceName, Readonly<Record<string, string>>>>>;
  /** Instances per stage (default 1): the mesh starts one, the environment the others. */
  readonly instances?: Partial<Readonly<Record<StageService, number>>>;
  /** The payout reaches the bank through a {@link BankLink} (a hop faults can act on). */
  readonly bankLink?: boolean;
  readonly logLevel?: string;
  /** Scratch folder (logs, JetStream store, the bank's state file); default a new temp folder. */
  readonly dataDir?: string;
  /** Remove the scratch folder at stop (default true). */
  readonly removeDataOnStop?: boolean;
  readonly onStatus?: (line: string) => void;
}

/** A service the supervisor found dead without a fault having killed it. */
export interface UnplannedExit {
  /** The service, or the label of an extra instance (`ledger#2`). */
  readonly service: ServiceName | string;
  readonly atMs: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** The last lines of its log. */
  readonly tail: string;
}

/** A process whose memory is sampled. */
export interface WatchedProcess {
  readonly name: string;
  readonly pid: number;
}

/** A running chaos environment. */
export interface ChaosEnv {
  readonly mesh: MeshHandle;
  /** URL(s) for the runner's own clients: comma-joined for a cluster, never through a proxy. */
  readonly natsUrl: string;
  readonly gatewayUrl: string;
  readonly nats: NatsServerHandle | undefined;
  readonly cluster: NatsClusterHandle | undefined;
  readonly redis: RedisServerHandle;
  /** Per service, the proxies in front of NATS and Redis (only with `proxies`). */
  readonly proxies: ReadonlyMap<StageService, { readonly nats: FaultProxy; readonly redis: FaultProxy }>;
  readonly refusedBankAccounts: readonly string[];
  /** The simulated bank itself (its admin API: `/admin/stats`, `/admin/payouts`, `/admin/outage`). */
  readonly bankUrl: string;
  /** The hop between the payout and the bank (only with `bankLink`). */
  readonly bankLink: BankLink | undefined;
  readonly dataDir: string;
  /** Every running or stopped instance of a stage: the mesh's own first, then extra ones. */
  instances(name: StageService): Instance[];
  /**
   * Starts one more instance of a stage with the same environment, its own HTTP port and log
   * file (`<logs>/<name>-<n>.log`), and waits until it is ready. Stopped with the environment.
   */
  startExtra(name: StageService): Promise<Instance>;
  /** SIGKILL a service and keep it down (the supervisor leaves it alone) until {@link start}. */
  kill(name: ServiceName): Promise<void>;
  /** Starts a service that a fault took down and waits until it is ready. */
  start(name: ServiceName): Promise<void>;
  /** SIGSTOP: the process freezes with its connections open. */
  pause(name: ServiceName): void;
  /** SIGCONT. */
  resume(name: ServiceName): void;
  /** Every process to sample: services, nats-server node(s), redis-server. */
  processes(): WatchedProcess[];
  /** Services that died on their own and were restarted. */
  unplannedExits(): readonly UnplannedExit[];
  /** Stops everything this environment started. Idempotent; never throws. */
  stop(): Promise<void>;
}

/**
 * Starts the servers, the proxies and the mesh. When anything fails, what was started is
 * stopped before the error is thrown.
 */
export async function startChaosEnv(o: ChaosEnvOptions): Promise<ChaosEnv> {
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), "jetmesh-chaos-")));
  const status = o.onStatus ?? (() => {});
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const infra = await startInfra({
      topology: o.topology,
      ...(o.topology === "single" ? { storeDir: join(dataDir, "nats") } : {}),
    });
    cleanups.push(() => infra.stop());
    const { nats, cluster, natsUrl } = infra;
    // startInfra reuses nothing here (no URLs given): it started this redis-server.
    const redis = infra.redis as RedisServerHandle;
    status(`servers: nats ${natsUrl}, redis ${redis.url}`);

    const proxies = new Map<StageService, { nats: FaultProxy; redis: FaultProxy }>();
    const serviceEnv: Partial<Record<ServiceName, Record<string, string>>> = {};
    if (o.proxies) {
      if (!nats) throw new Error("fault proxies need the single-server topology");
      for (const s of StageServices) {
        const pair = {
          nats: await startFaultProxy({ targetPort: nats.port }),
          redis: await startFaultProxy({ targetPort: redis.port }),
        };
        cleanups.push(() => Promise.all([pair.nats.close(), pair.redis.close()]));
        proxies.set(s, pair);
        // A lone nats-server advertises no cluster URLs, so the client keeps to the proxy.
        serviceEnv[s] = { NATS_URL: pair.nats.url("nats"), REDIS_URL: pair.redis.url("redis") };
      }
    }
    for (const [name, env] of Object.entries(o.serviceEnv ?? {}))
      serviceEnv[name as ServiceName] = { ...serviceEnv[name as ServiceName], ...env };
    // The bank keeps its answers in a file, so a payout retried after a bank crash is
    // still answered from the first decision (an idempotent external system).
    serviceEnv["bank-sim"] = { BANK_STATE_FILE: join(dataDir, "bank.jsonl"), ...serviceEnv["bank-sim"] };
    let bankLink: BankLink | undefined;
    if (o.bankLink) {
      const link = await startBankLink();
      bankLink = link;
      cleanups.push(() => link.close());
      serviceEnv.payout = { ...serviceEnv.payout, PAYOUT_BANK_URL: link.url };
    }

    const logLevel = o.logLevel ?? "warn";
    const meshEnv = { ...o.env, ...(cluster ? { NATS_URL: cluster.url } : {}) };
    const mesh = await startMesh({
      // The first node answers the mesh's probe; services get every node (below).
      natsUrl: cluster ? (cluster.urls[0] as string) : natsUrl,
      redisUrl: redis.url,
      dataDir: join(dataDir, "mesh"),
      logLevel,
      env: meshEnv,
      serviceEnv,
      refuseAccounts: REFUSED_BANK_ACCOUNTS,
      readyTimeoutMs: 90_000,
      onStatus: status,
    });
    cleanups.push(() => mesh.stop());
    bankLink?.setTarget(mesh.bankUrl);
    if (o.removeDataOnStop ?? true) cleanups.unshift(() => rm(dataDir, { recursive: true, force: true }));
    const env = new Env({
      mesh,
      natsUrl,
      nats,
      cluster,
      redis,
      proxies,
      bankLink,
      dataDir,
      cleanup,
    });
    const extras = Object.entries(o.instances ?? {}).flatMap(([name, n]) =>
      Array.from({ length: Math.max(0, (n ?? 1) - 1) }, () => name as StageService),
    );
    if (extras.length) {
      status(`services: starting extra instances of ${extras.join(", ")}`);
      await Promise.all(extras.map((name) => env.startExtra(name)));
    }
    return env;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

const SUPERVISE_EVERY_MS = 500;
/** A service that keeps dying is left down after this many restarts (the run reports it). */
const MAX_RESTARTS_PER_SERVICE = 20;

interface EnvParts {
  readonly mesh: MeshHandle;
  readonly natsUrl: string;
  readonly nats: NatsServerHandle | undefined;
  readonly cluster: NatsClusterHandle | undefined;
  readonly redis: RedisServerHandle;
  readonly proxies: ReadonlyMap<StageService, { nats: FaultProxy; redis: FaultProxy }>;
  readonly bankLink: BankLink | undefined;
  readonly dataDir: string;
  readonly cleanup: () => Promise<void>;
}

class Env implements ChaosEnv {
  readonly mesh: MeshHandle;
  readonly natsUrl: string;
  readonly nats: NatsServerHandle | undefined;
  readonly cluster: NatsClusterHandle | undefined;
  readonly redis: RedisServerHandle;
  readonly proxies: ReadonlyMap<StageService, { nats: FaultProxy; redis: FaultProxy }>;
  readonly bankLink: BankLink | undefined;
  readonly dataDir: string;
  readonly gatewayUrl: string;
  readonly bankUrl: string;
  readonly refusedBankAccounts = REFUSED_BANK_ACCOUNTS;
  readonly #parts: EnvParts;
  /** Services a fault holds down or is restarting: the supervisor keeps off them. */
  readonly #held = new Set<ServiceName>();
  readonly #exits: UnplannedExit[] = [];
  readonly #restarting = new Set<string>();
  /** Instances beyond the mesh's own, by label (`ledger#2`). */
  readonly #extras: { readonly service: StageService; readonly label: string; readonly s: MeshService }[] =
    [];
  #timer: NodeJS.Timeout | undefined;
  #stopped: Promise<void> | undefined;

  constructor(parts: EnvParts) {
    this.#parts = parts;
    this.mesh = parts.mesh;
    this.natsUrl = parts.natsUrl;
    this.nats = parts.nats;
    this.cluster = parts.cluster;
    this.redis = parts.redis;
    this.proxies = parts.proxies;
    this.bankLink = parts.bankLink;
    this.dataDir = parts.dataDir;
    this.gatewayUrl = parts.mesh.gatewayUrl;
    this.bankUrl = parts.mesh.bankUrl;
    this.#timer = setInterval(() => this.#supervise(), SUPERVISE_EVERY_MS);
  }

  instances(name: StageService): Instance[] {
    return [
      meshInstance(name, this.mesh.service(name)),
      ...this.#extras.filter((x) => x.service === name).map((x, i) => meshInstance(name, x.s, i + 2)),
    ];
  }

  async startExtra(name: StageService): Promise<Instance> {
    if (this.#stopped) throw new Error("the environment is stopped");
    const index = this.instances(name).length + 1;
    const extra = { service: name, label: `${name}#${index}`, s: await this.mesh.addInstance(name) };
    this.#extras.push(extra);
    return meshInstance(name, extra.s, index);
  }

  async kill(name: ServiceName): Promise<void> {
    this.#held.add(name);
    await this.mesh.service(name).kill();
  }

  async start(name: ServiceName): Promise<void> {
    this.#held.add(name);
    try {
      const s = this.mesh.service(name);
      if (!s.isRunning()) await s.start();
      else await s.waitReady();
    } finally {
      this.#held.delete(name);
    }
  }

  pause(name: ServiceName): void {
    const pid = this.mesh.service(name).child?.pid;
    if (pid !== undefined && this.mesh.service(name).isRunning()) process.kill(pid, "SIGSTOP");
  }

  resume(name: ServiceName): void {
    const pid = this.mesh.service(name).child?.pid;
    if (pid !== undefined && this.mesh.service(name).isRunning()) process.kill(pid, "SIGCONT");
  }

  processes(): WatchedProcess[] {
    const out: WatchedProcess[] = [];
    for (const s of Object.values(this.mesh.services)) {
      if (s.isRunning() && s.child) out.push({ name: s.name, pid: s.child.pid });
    }
    for (const x of this.#extras)
      if (x.s.isRunning() && x.s.child) out.push({ name: x.label, pid: x.s.child.pid });
    for (const n of this.cluster?.nodes ?? (this.nats ? [this.nats] : [])) {
      if (n.isRunning())
        out.push({ name: n.serverName ? `nats-${n.serverName}` : "nats-server", pid: n.pid });
    }
    if (this.redis.isRunning()) out.push({ name: "redis-server", pid: this.redis.pid });
    return out;
  }

  unplannedExits(): readonly UnplannedExit[] {
    return this.#exits;
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      if (this.#timer) clearInterval(this.#timer);
      // A frozen process ignores SIGTERM until it is continued.
      for (const s of [...Object.values(this.mesh.services), ...this.#extras.map((x) => x.s)]) {
        if (s.isRunning() && s.child) {
          try {
            process.kill(s.child.pid, "SIGCONT");
          } catch {
            // already gone
          }
        }
      }
      await this.#parts.cleanup();
    })();
    return this.#stopped;
  }

  #supervise(): void {
    if (this.#stopped) return;
    const all = [
      ...Object.values(this.mesh.services).map((s) => ({
        label: s.name as string,
        s,
        held: this.#held.has(s.name),
      })),
      ...this.#extras.map((x) => ({ label: x.label, s: x.s, held: false })),
    ];
    for (const { label, s, held } of all) {
      if (held || this.#restarting.has(label) || s.isRunning() || !s.child) continue;
      if (this.#exits.filter((e) => e.service === label).length >= MAX_RESTARTS_PER_SERVICE) continue;
      this.#restarting.add(label);
      void (async () => {
        try {
          const { code, signal } = await (s.child as NonNullable<typeof s.child>).exited;
          const tail = (await s.log()).split("\n").slice(-15).join("\n");
          this.#exits.push({ service: label, atMs: Date.now(), code, signal, tail });
          if (!this.#stopped && !this.#held.has(label as ServiceName)) await s.start();
        } catch {
          // the next round tries again
        } finally {
          this.#restarting.delete(label);
        }
      })();
    }
  }
}
