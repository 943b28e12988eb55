import { randomBytes } from "node:crypto";
import type { NatsServerHandle } from "./nats-server.ts";
import { startNats } from "./nats-server.ts";
import { freePort } from "./ports.ts";
import { waitFor } from "../wait.ts";

/** Options of {@link startNatsCluster}. */
export interface StartNatsClusterOptions {
  /** Number of nodes (default 3). */
  size?: number;
  /** Cluster name (default `jetmesh-<random>`). */
  name?: string;
  /** How long start-up waits for a JetStream meta leader (default 30 000 ms). */
  readyTimeoutMs?: number;
}

/** A JetStream cluster of nats-server processes started by {@link startNatsCluster}. */
export interface NatsClusterHandle {
  /** The nodes, named `n1`, `n2`, …; each can be killed and restarted on its own. */
  readonly nodes: NatsServerHandle[];
  /** Client URL of every node. */
  readonly urls: string[];
  /** Every client URL joined with commas, for a client's `servers` option. */
  readonly url: string;
  /** Name shared by the nodes' `cluster` blocks. */
  readonly name: string;
  /** Stops every node (SIGTERM, SIGKILL after 5 s) and removes their temp folders. */
  stop(): Promise<void>;
  /**
   * Waits until every running node names the same JetStream meta leader, the leader is one
   * of them, and it sees every other running node as a current peer (`/jsz` meta_cluster).
   * Nodes that are down are ignored, so this also holds with a quorum left.
   * @throws `timed out waiting for …` after `timeoutMs` (default 30 000).
   */
  waitForJetStream(timeoutMs?: number): Promise<void>;
}

/** The part of `/jsz` this file reads (nats-server 2.9). */
interface JszMeta {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: { name: string; current?: boolean; offline?: boolean }[];
  };
}

/**
 * Starts `size` nats-server nodes on loopback, each with its own client, route and
 * monitoring port, store folder and `server_name` (`n1`…), routed to each other in one
 * named cluster with JetStream on, and waits until a JetStream meta leader exists.
 * A node killed with SIGKILL and restarted keeps its ports and store and rejoins.
 *
 * @throws when a node does not start (the others are stopped) or no meta leader is elected in time.
 */
export async function startNatsCluster(opts: StartNatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError("size must be a positive integer");
  const name = opts.name ?? `jetmesh-${randomBytes(4).toString("hex")}`;
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());

  const started = await Promise.allSettled(
    routePorts.map((routePort, i) =>
      startNats({
        serverName: `n${i + 1}`,
        cluster: { name, port: routePort, routes: routePorts.filter((p) => p !== routePort) },
      }),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failure = started.find((r) => r.status === "rejected");
  if (failure !== undefined) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw new Error(`nats cluster ${name} did not start`, { cause: failure.reason });
  }

  const cluster = new NatsCluster(name, nodes);
  try {
    await cluster.waitForJetStream(opts.readyTimeoutMs ?? 30_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

class NatsCluster implements NatsClusterHandle {
  readonly nodes: NatsServerHandle[];
  readonly urls: string[];
  readonly url: string;
  readonly name: string;

  constructor(name: string, nodes: NatsServerHandle[]) {
    this.name = name;
    this.nodes = nodes;
    this.urls = nodes.map((n) => n.url);
    this.url = this.urls.join(",");
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  async waitForJetStream(timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.#metaLeaderReady(), {
      timeoutMs,
      intervalMs: 100,
      what: `a JetStream meta leader in cluster ${this.name}`,
    });
  }

  async #metaLeaderReady(): Promise<boolean> {
    const running = this.nodes.filter((n) => n.isRunning());
    if (running.length === 0) throw new Error("no node is running");
    const views = await Promise.all(running.map((n) => n.monitor<JszMeta>("/jsz")));
    const leaders = new Set(views.map((v) => v.meta_cluster?.leader ?? ""));
    const [leader] = leaders;
    if (leaders.size !== 1 || leader === undefined || leader === "") {
      throw new Error(`nodes disagree on the meta leader: ${JSON.stringify([...leaders])}`);
    }
    const index = running.findIndex((n) => n.serverName === leader);
    if (index < 0) throw new Error(`meta leader ${leader} is not a running node`);
    const peers = views[index]?.meta_cluster?.replicas ?? [];
    for (const node of running) {
      if (node.serverName === leader) continue;
      const peer = peers.find((p) => p.name === node.serverName);
      if (peer?.current !== true || peer.offline === true) {
        throw new Error(`meta leader ${leader} does not see ${node.serverName} as current`);
      }
    }
    return true;
  }
}
