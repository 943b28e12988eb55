import { writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { join, relative } from "node:path";
import { ensureBinaries } from "./binaries.ts";
import type { ChildHandle } from "./child-process.ts";
import { spawnProcess, waitUntilReady } from "./child-process.ts";
import { httpGet } from "./http-get.ts";
import { freePort } from "./ports.ts";
import { createTempDir, removeTempDir } from "./temp-dirs.ts";

/** Route settings of one cluster member; filled in by `startNatsCluster`, not by tests. */
export interface NatsClusterMembership {
  /** Cluster name shared by every member. */
  name: string;
  /** Loopback port this member listens on for routes. */
  port: number;
  /** Route ports of the other members. */
  routes: number[];
}

/** Options of {@link startNats}. Every port defaults to a free loopback port. */
export interface StartNatsOptions {
  /** Client port (default: a free port). */
  port?: number;
  /** HTTP monitoring port (default: a free port). */
  monitorPort?: number;
  /** JetStream store folder (default: a folder inside the server's temp dir). Never removed by the kit when given. */
  storeDir?: string;
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** `max_payload` in bytes (server default 1 MiB). */
  maxPayload?: number;
  /** Extra command-line arguments, appended after `-c <config>`. */
  extraArgs?: string[];
  /** `server_name` (required by JetStream in a cluster). */
  serverName?: string;
  /** Cluster membership; used by `startNatsCluster`. */
  cluster?: NatsClusterMembership;
  /** How long start and restart wait for the server to be ready (default 15 000 ms). */
  readyTimeoutMs?: number;
  /**
   * A config file to `include` after the kit's own settings (e.g. the accounts and users that
   * `jetmesh-access nats` writes). Read where it is, on every start and restart; includes
   * inside it are relative to its own folder.
   */
  configFile?: string;
  /** Config text appended verbatim after the kit's settings and `configFile`. */
  configText?: string;
}

/** A nats-server process started by {@link startNats}. */
export interface NatsServerHandle {
  /** Client URL, `nats://127.0.0.1:PORT`. */
  readonly url: string;
  /** Client port; kept across restarts. */
  readonly port: number;
  /** HTTP monitoring port; kept across restarts. */
  readonly monitorPort: number;
  /** JetStream store folder; kept across restarts. */
  readonly storeDir: string;
  /** `server_name`, when one was set. */
  readonly serverName: string | undefined;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** Sends `signal` (default SIGKILL, a crash) and waits for the process to exit. No-op when not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Stops the process if it runs (SIGTERM, SIGKILL after 5 s), starts it again on the same
   * ports with the same store folder, and waits until it is ready.
   * @throws when the server was stopped with {@link NatsServerHandle.stop} or is not ready in time.
   */
  restart(): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s, then removes the temp folder the kit created. Idempotent; final. */
  stop(): Promise<void>;
  /** True while the current process has not exited. */
  isRunning(): boolean;
  /** The last 200 lines the server printed, across restarts (restarts are marked). */
  logs(): string[];
  /**
   * GETs a monitoring endpoint (e.g. `/jsz`, `/varz`, `/healthz`) and parses the JSON.
   * @throws when the request fails or the status is not 200.
   */
  monitor<T = unknown>(path: string): Promise<T>;
}

const LOG_LINES = 200;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;

/**
 * Starts a nats-server on 127.0.0.1 with a config file written to a fresh temp folder,
 * and waits until it is ready: `/healthz?js-enabled-only=true` (plain `/healthz` without
 * JetStream) answers 200 and the client port accepts connections. When the kit chose
 * the ports and one turned out to be taken, it retries with new ports.
 *
 * @throws when the binary is missing, or the server exits or is not ready within
 *   `readyTimeoutMs`; the error carries the server's last log lines.
 */
export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServerHandle> {
  const { natsServer } = await ensureBinaries();
  const portsChosenByCaller =
    opts.port !== undefined || opts.monitorPort !== undefined || opts.cluster !== undefined;
  for (let attempt = 1; ; attempt++) {
    const workDir = await createTempDir("nats");
    const server = new NatsServer(natsServer, workDir, {
      ...opts,
      port: opts.port ?? (await freePort()),
      monitorPort: opts.monitorPort ?? (await freePort()),
    });
    try {
      await server.start();
      return server;
    } catch (err) {
      const portTaken = server.logs().some((line) => line.includes("address already in use"));
      await server.stop();
      if (!portTaken || portsChosenByCaller || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

type ResolvedOptions = StartNatsOptions & { port: number; monitorPort: number };

class NatsServer implements NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  readonly serverName: string | undefined;
  readonly #binary: string;
  readonly #workDir: string;
  readonly #configFile: string;
  readonly #opts: ResolvedOptions;
  #child: ChildHandle | undefined;
  #previousLogs: string[] = [];
  #stopped = false;

  constructor(binary: string, workDir: string, opts: ResolvedOptions) {
    this.#binary = binary;
    this.#workDir = workDir;
    this.#opts = opts;
    this.port = opts.port;
    this.monitorPort = opts.monitorPort;
    this.url = `nats://127.0.0.1:${opts.port}`;
    this.storeDir = opts.storeDir ?? join(workDir, "store");
    this.serverName = opts.serverName;
    this.#configFile = join(workDir, "nats-server.conf");
  }

  get pid(): number {
    return this.#child?.pid ?? -1;
  }

  isRunning(): boolean {
    return this.#child?.isRunning() ?? false;
  }

  logs(): string[] {
    return [...this.#previousLogs, ...(this.#child?.lines() ?? [])].slice(-LOG_LINES);
  }

  async start(): Promise<void> {
    await writeFile(this.#configFile, this.#config(), "utf8");
    await this.#spawnAndWait();
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.#child?.kill(signal);
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error(`nats-server ${this.url} was stopped and cannot be restarted`);
    await this.#terminate();
    this.#previousLogs = [...this.logs(), `--- testkit: restarting nats-server on port ${this.port} ---`];
    await this.#spawnAndWait();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#terminate();
    await removeTempDir(this.#workDir);
  }

  async monitor<T = unknown>(path: string): Promise<T> {
    const url = `http://127.0.0.1:${this.monitorPort}${path.startsWith("/") ? path : `/${path}`}`;
    const res = await httpGet(url);
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${res.body.trim()}`);
    return JSON.parse(res.body) as T;
  }

  async #terminate(): Promise<void> {
    await this.#child?.stop(STOP_GRACE_MS);
  }

  async #spawnAndWait(): Promise<void> {
    this.#child = await spawnProcess({
      name: `nats-server:${this.port}`,
      command: this.#binary,
      args: ["-c", this.#configFile, ...(this.#opts.extraArgs ?? [])],
      maxLines: LOG_LINES,
    });
    await this.#waitReady(this.#child);
  }

  async #waitReady(child: ChildHandle): Promise<void> {
    const health = this.#opts.jetstream === false ? "/healthz" : "/healthz?js-enabled-only=true";
    await waitUntilReady(
      child,
      this.#opts.readyTimeoutMs ?? 15_000,
      async () => {
        const res = await httpGet(`http://127.0.0.1:${this.monitorPort}${health}`, 1_000);
        if (res.status !== 200) return `${health} answered ${res.status}: ${res.body.trim()}`;
        // The monitor listens before the client port does; wait for both.
        await probeTcp(this.port);
        return undefined;
      },
      (why) => this.#startError(why),
    );
  }

  #startError(why: string): Error {
    const tail = this.logs().slice(-30).join("\n");
    return new Error(`nats-server on 127.0.0.1:${this.port} ${why}\n--- last log lines ---\n${tail}`);
  }

  #config(): string {
    const o = this.#opts;
    const lines = [
      "# written by @jetmesh/testkit",
      `host: "127.0.0.1"`,
      `port: ${o.port}`,
      `http: "127.0.0.1:${o.monitorPort}"`,
    ];
    if (o.serverName !== undefined) lines.push(`server_name: ${JSON.stringify(o.serverName)}`);
    if (o.maxPayload !== undefined) lines.push(`max_payload: ${o.maxPayload}`);
    if (o.jetstream !== false) lines.push(`jetstream { store_dir: ${JSON.stringify(this.storeDir)} }`);
    if (o.cluster !== undefined) {
      const routes = o.cluster.routes.map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`)).join(", ");
      lines.push(
        "cluster {",
        `  name: ${JSON.stringify(o.cluster.name)}`,
        `  listen: "127.0.0.1:${o.cluster.port}"`,
        `  routes: [${routes}]`,
        "}",
      );
    }
    // nats-server joins an include's path to the including file's folder, absolute or not.
    if (o.configFile !== undefined)
      lines.push(`include ${JSON.stringify(relative(this.#workDir, o.configFile))}`);
    if (o.configText !== undefined) lines.push(o.configText);
    return `${lines.join("\n")}\n`;
  }
}

/** Resolves when a TCP connection to 127.0.0.1:port succeeds (and closes it). */
function probeTcp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.setTimeout(1_000, () => socket.destroy(new Error(`connect to 127.0.0.1:${port} timed out`)));
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}
