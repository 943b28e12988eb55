import { JetStreamApiError, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { Gauge, type Registry } from "prom-client";

/** One member of a stream's replica group, as the stream's leader (or a leaderless member) reports it. */
export interface ReplicaView {
  readonly server: string;
  readonly current: boolean;
  readonly offline: boolean;
  /** Operations the replica is behind the leader (0 when the server does not say). */
  readonly lag: number;
  /** Since the leader last heard from it. */
  readonly lastSeenMs: number;
}

/** How full a stream is, and how old its oldest message, as its info reports it. */
export interface StreamCapacity {
  readonly messages: number;
  readonly bytes: number;
  /** -1 (or 0) for no limit. */
  readonly maxBytes: number;
  readonly maxMsgs: number;
  /** 0 for no age limit. */
  readonly maxAgeMs: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** When the oldest message was stored (ms); undefined for an empty stream. */
  readonly firstStoredAt: number | undefined;
}

/** A stream's replication as the JetStream API reports it. */
export interface StreamReplication {
  readonly stream: string;
  /** Configured replicas (num_replicas). */
  readonly replicas: number;
  /** The stream leader's server name; undefined when the group has none (or nobody answered). */
  readonly leader: string | undefined;
  /** The other members (the leader is not among them). */
  readonly peers: readonly ReplicaView[];
  /** False when no member answered the stream-info request in time (a group without a leader, or NATS unreachable). */
  readonly answered: boolean;
  /** Present when the stream answered. */
  readonly capacity?: StreamCapacity;
}

/** The account's JetStream storage (every stream's bytes on the servers it uses) and its limit. */
export interface AccountStorage {
  readonly bytes: number;
  /** -1 when the account has no storage limit of its own (then the servers' max_file_store bounds it). */
  readonly limitBytes: number;
}

/**
 * A replica the leader has not heard from for this long, and that is not current, is counted
 * offline. nats-server 2.9 sets `offline` only for peers it has removed; a killed node stays
 * listed with `current: false` and a growing `active` (the time since it was last seen).
 */
export const OFFLINE_AFTER_MS = 5_000;

const isNotFound = (err: unknown) => err instanceof JetStreamApiError && err.code === 10059;

/**
 * Reads from a stream info's `cluster` block what the health metrics need. A server that is
 * not clustered sends no block: the stream is led by the server that answered, `answeredBy`.
 */
export function replicationOf(
  info: Pick<StreamInfo, "config" | "cluster"> & { state?: StreamInfo["state"] },
  answeredBy = "standalone",
): StreamReplication {
  const c = info.cluster;
  const peers = (c?.replicas ?? []).map((r) => {
    const lastSeenMs = Number(r.active ?? 0) / 1e6;
    return {
      server: r.name,
      current: r.current === true,
      offline: r.offline === true || (r.current !== true && lastSeenMs >= OFFLINE_AFTER_MS),
      lag: Number(r.lag ?? 0),
      lastSeenMs,
    };
  });
  return {
    stream: info.config.name,
    replicas: info.config.num_replicas ?? 1,
    leader: c ? c.leader || undefined : answeredBy,
    peers,
    answered: true,
    ...(info.state ? { capacity: capacityOf(info as Pick<StreamInfo, "config" | "state">) } : {}),
  };
}

/** A stream's fill and age from its info. */
export function capacityOf(info: Pick<StreamInfo, "config" | "state">): StreamCapacity {
  const { state, config } = info;
  const first = state.messages > 0 ? Date.parse(state.first_ts) : Number.NaN;
  return {
    messages: state.messages,
    bytes: state.bytes,
    maxBytes: config.max_bytes,
    maxMsgs: config.max_msgs,
    maxAgeMs: Number(config.max_age ?? 0) / 1e6,
    firstSeq: state.first_seq,
    lastSeq: state.last_seq,
    firstStoredAt: Number.isFinite(first) ? first : undefined,
  };
}

/**
 * Asks for each stream's info; a stream that does not exist is left out (the settings check
 * reports it), one whose info nobody answers within the manager's timeout has no leader that
 * serves it. @throws what else the API throws.
 */
export async function readReplication(
  jsm: JetStreamManager,
  streams: readonly string[],
  connectedTo?: string,
): Promise<StreamReplication[]> {
  const out: StreamReplication[] = [];
  for (const stream of streams) {
    try {
      out.push(replicationOf(await jsm.streams.info(stream), connectedTo));
    } catch (err) {
      if (isNotFound(err)) continue;
      // A timeout, no responders, or "JetStream system temporarily unavailable" (10008): the
      // stream's group has no member able to answer for it now.
      out.push({ stream, replicas: 0, leader: undefined, peers: [], answered: false });
    }
  }
  return out;
}

/**
 * Each server named by any stream, up or down: up when it leads a stream, is a member that is
 * not offline, or is the server this client is connected to (it answered); down when every
 * stream that names it counts it offline.
 */
export function serversOf(views: readonly StreamReplication[], connectedTo?: string): Map<string, boolean> {
  const up = new Map<string, boolean>();
  const mark = (server: string, isUp: boolean) => up.set(server, (up.get(server) ?? false) || isUp);
  if (connectedTo) mark(connectedTo, true);
  for (const v of views) {
    if (v.leader) mark(v.leader, true);
    for (const p of v.peers) mark(p.server, !p.offline);
  }
  return up;
}

/**
 * The NATS cluster's health as the reconciler sees it through the JetStream API (no system
 * account needed): per stream, whether it has a leader and each replica's state; per server
 * named by any stream, whether it is up. Labels are bounded by the streams and the servers.
 */
export function createBrokerHealthMetrics(registry: Registry) {
  const registers = [registry];
  const g = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });
  const m = {
    leader: g(
      "jetmesh_nats_stream_leader",
      "1 when the stream has a leader that answers for it, 0 when its group has none (quorum lost, or no member answered)",
      ["stream"] as const,
    ),
    replicas: g("jetmesh_nats_stream_replicas", "Replicas the stream is configured with (num_replicas)", [
      "stream",
    ] as const),
    current: g(
      "jetmesh_nats_replica_current",
      "1 when a follower replica of the stream is current with its leader",
      ["stream", "server"] as const,
    ),
    offline: g(
      "jetmesh_nats_replica_offline",
      `1 when a follower replica is not current and its leader has not heard from it for ${OFFLINE_AFTER_MS / 1000} s or more`,
      ["stream", "server"] as const,
    ),
    lag: g(
      "jetmesh_nats_replica_lag_operations",
      "Operations a follower replica is behind its stream leader",
      ["stream", "server"] as const,
    ),
    lastSeen: g(
      "jetmesh_nats_replica_last_seen_seconds",
      "Seconds since the stream leader last heard from a follower replica",
      ["stream", "server"] as const,
    ),
    messages: g("jetmesh_stream_messages", "Messages the stream holds", ["stream"] as const),
    bytes: g("jetmesh_stream_bytes", "Bytes the stream holds (one replica)", ["stream"] as const),
    fill: g(
      "jetmesh_stream_fill_ratio",
      "Share of a stream's byte and message limits in use (discard=new refuses writes at 1); streams without a limit have no series",
      ["stream", "limit"] as const,
    ),
    firstSeq: g("jetmesh_stream_first_seq", "Sequence of the stream's oldest message", ["stream"] as const),
    lastSeq: g("jetmesh_stream_last_seq", "Sequence of the stream's newest message", ["stream"] as const),
    oldestAge: g(
      "jetmesh_stream_oldest_message_age_seconds",
      "Age of the stream's oldest message (absent for an empty stream)",
      ["stream"] as const,
    ),
    maxAge: g(
      "jetmesh_stream_max_age_seconds",
      "The stream's age limit (0: none; messages leave by age after it)",
      ["stream"] as const,
    ),
    storage: g(
      "jetmesh_jetstream_storage_bytes",
      "JetStream file storage the account uses, every stream and replica counted",
      ["scope"] as const,
    ),
    storageLimit: g(
      "jetmesh_jetstream_storage_limit_bytes",
      "The account's JetStream storage limit (absent when it has none: the servers' max_file_store bounds it)",
      ["scope"] as const,
    ),
    serverUp: g(
      "jetmesh_nats_server_up",
      "1 when the server leads a stream, is a replica that is not offline, or is the one the reconciler is connected to; 0 when every stream naming it counts it offline",
      ["server"] as const,
    ),
  };
  return {
    /** Replaces every series with what `views` says, in one synchronous step (a scrape sees all or none). */
    record(
      views: readonly StreamReplication[],
      connectedTo?: string,
      account?: AccountStorage,
      now = Date.now(),
    ): void {
      for (const gauge of Object.values(m)) gauge.reset();
      if (account) {
        // A label, so that a reset removes the series (a gauge without labels reads 0).
        m.storage.set({ scope: "account" }, account.bytes);
        if (account.limitBytes > 0) m.storageLimit.set({ scope: "account" }, account.limitBytes);
      }
      for (const v of views) {
        m.leader.set({ stream: v.stream }, v.leader ? 1 : 0);
        if (!v.answered) continue;
        m.replicas.set({ stream: v.stream }, v.replicas);
        const c = v.capacity;
        if (c) {
          const stream = { stream: v.stream };
          m.messages.set(stream, c.messages);
          m.bytes.set(stream, c.bytes);
          if (c.maxBytes > 0) m.fill.set({ stream: v.stream, limit: "bytes" }, c.bytes / c.maxBytes);
          if (c.maxMsgs > 0) m.fill.set({ stream: v.stream, limit: "messages" }, c.messages / c.maxMsgs);
          m.firstSeq.set(stream, c.firstSeq);
          m.lastSeq.set(stream, c.lastSeq);
          m.maxAge.set(stream, c.maxAgeMs / 1000);
          if (c.firstStoredAt !== undefined)
            m.oldestAge.set(stream, Math.max(0, (now - c.firstStoredAt) / 1000));
        }
        for (const p of v.peers) {
          const l = { stream: v.stream, server: p.server };
          m.current.set(l, p.current ? 1 : 0);
          m.offline.set(l, p.offline ? 1 : 0);
          m.lag.set(l, p.lag);
          m.lastSeen.set(l, p.lastSeenMs / 1000);
        }
      }
      for (const [server, up] of serversOf(views, connectedTo)) m.serverUp.set({ server }, up ? 1 : 0);
    },
    /** Drops every series: NATS unreachable, nothing known. */
    clear(): void {
      for (const gauge of Object.values(m)) gauge.reset();
    },
  };
}
export type BrokerHealthMetrics = ReturnType<typeof createBrokerHealthMetrics>;
