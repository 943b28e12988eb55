// NATS and Redis health as the reconciler exports it, against real servers: a 3-node
// nats-server cluster losing one node (a replica offline, the stream still led) and then a
// second (quorum lost: no leader), and a redis-server near its maxmemory.
import { startNats, startNatsCluster, startRedis, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { replicationOf } from "./broker-health.ts";
import { keyKind } from "./redis-health.ts";
import { startInfraHealth } from "./infra-health.ts";

const logger = pino({ level: "silent" });

/** Every sample of `name` as `labels → value`. */
async function samples(registry: Registry, name: string): Promise<Map<string, number>> {
  // Redis's series carry the server's host:port: left out of the keys here
  const m = registry.getSingleMetric(name);
  const out = new Map<string, number>();
  for (const v of (await m?.get())?.values ?? [])
    out.set(
      Object.entries(v.labels)
        .filter(([k, x]) => !(k === "server" && String(x).startsWith("127.0.0.1:")))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => `${k}=${x}`)
        .join(","),
      v.value,
    );
  return out;
}

afterAll(async () => {
  await stopAllProcesses();
}, 60_000);

describe("infra health", () => {
  it("reconciler - keys are counted by a bounded kind", () => {
    expect(keyKind("ledger:outcome:t-1")).toBe("ledger:outcome:*");
    expect(keyKind("ledger:bal:acc-alice")).toBe("ledger:bal:*");
    expect(keyKind("ledger:accounts")).toBe("ledger:*");
    expect(keyKind("validator:0b6a2c9e-1111-8aaa-9bbb-0123456789ab")).toBe("validator:*");
    expect(keyKind("gateway:idem:client-a:key-1")).toBe("gateway:idem:*");
    expect(keyKind("risk:velocity:acc-a:60")).toBe("risk:velocity:*");
    expect(keyKind("status:t-9")).toBe("status:*");
    // an id in the second place does not become a kind
    expect(keyKind("x:1234:y")).toBe("x:*");
  });

  it("reconciler - a server that is not clustered leads its streams itself (its info has no cluster block)", () => {
    const config = { name: "LEDGER", num_replicas: 1 } as never;
    expect(replicationOf({ config, cluster: undefined }, "n0")).toMatchObject({ leader: "n0", peers: [] });
    // a cluster block without a leader: none
    expect(
      replicationOf({ config, cluster: { name: "c", replicas: [] } as never }, "n0").leader,
    ).toBeUndefined();
  });

  it("reconciler - a 3-node cluster: one node killed shows its replicas offline and the server down; two killed leave the stream without a leader; restarted, all clear", {
    timeout: 180_000,
  }, async () => {
    const cluster = await startNatsCluster({ size: 3 });
    const redisServer = await startRedis();
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    // the last part kills the server: its reconnect errors are expected
    redis.on("error", () => {});
    const registry = new Registry();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "HEALTH", subjects: ["health.>"], num_replicas: 3 });
    const health = startInfraHealth({
      nc,
      redis,
      registry,
      logger,
      intervalMs: 250,
      timeoutMs: 1000,
      scanBudget: 1000,
      streams: ["HEALTH", "NOT_THERE"],
      monitorUrls: cluster.nodes.map((n) => `http://127.0.0.1:${n.monitorPort}`),
    });
    const leader = async () => (await samples(registry, "jetmesh_nats_stream_leader")).get("stream=HEALTH");
    try {
      await waitFor(async () => (await leader()) === 1, { what: "a leader for HEALTH", timeoutMs: 20_000 });
      const info = await jsm.streams.info("HEALTH");
      const led = info.cluster?.leader as string;
      // a missing stream is no series (the settings check reports it)
      expect((await samples(registry, "jetmesh_nats_stream_leader")).has("stream=NOT_THERE")).toBe(false);
      expect(await samples(registry, "jetmesh_nats_stream_replicas")).toEqual(
        new Map([["stream=HEALTH", 3]]),
      );
      await waitFor(
        async () => {
          const up = await samples(registry, "jetmesh_nats_server_up");
          return ["n1", "n2", "n3"].every((s) => up.get(`server=${s}`) === 1);
        },
        { what: "every server up", timeoutMs: 20_000 },
      );
      const followers = ["n1", "n2", "n3"].filter((s) => s !== led);
      const offline = await samples(registry, "jetmesh_nats_replica_offline");
      expect(followers.map((s) => offline.get(`server=${s},stream=HEALTH`))).toEqual([0, 0]);

      // One follower down: still led, that replica offline, that server down.
      const victim = followers[0] as string;
      await cluster.nodes.find((n) => n.serverName === victim)?.kill();
      await waitFor(
        async () => {
          const off = await samples(registry, "jetmesh_nats_replica_offline");
          const up = await samples(registry, "jetmesh_nats_server_up");
          return off.get(`server=${victim},stream=HEALTH`) === 1 && up.get(`server=${victim}`) === 0;
        },
        { what: `replica ${victim} offline`, timeoutMs: 30_000 },
      );
      expect(await leader()).toBe(1);
      // its monitoring port gone: unhealthy; the others still know a meta leader
      const target = (name: string) =>
        `target=127.0.0.1:${cluster.nodes.find((n) => n.serverName === name)?.monitorPort}`;
      await waitFor(
        async () => (await samples(registry, "jetmesh_nats_server_healthy")).get(target(victim)) === 0,
        {
          what: `${victim} unhealthy`,
          timeoutMs: 10_000,
        },
      );
      const meta = await samples(registry, "jetmesh_nats_meta_leader");
      expect(meta.has(target(victim))).toBe(false);
      expect([...meta.values()]).toEqual([1, 1]);
      expect(
        (await samples(registry, "jetmesh_nats_replica_current")).get(`server=${victim},stream=HEALTH`),
      ).toBe(0);
      expect(
        (await samples(registry, "jetmesh_nats_replica_last_seen_seconds")).get(
          `server=${victim},stream=HEALTH`,
        ),
      ).toBeGreaterThanOrEqual(5);

      // A second node down: quorum lost, the leader steps down, nobody leads HEALTH.
      const second = cluster.nodes.find((n) => n.serverName !== victim && n.serverName !== led);
      await second?.kill();
      await waitFor(async () => (await leader()) === 0, {
        what: "HEALTH without a leader",
        timeoutMs: 60_000,
        intervalMs: 250,
      });
      // the last one knows no meta leader and says so in /healthz
      const last = target(led);
      await waitFor(
        async () =>
          (await samples(registry, "jetmesh_nats_meta_leader")).get(last) === 0 &&
          (await samples(registry, "jetmesh_nats_server_healthy")).get(last) === 0,
        { what: "no meta leader", timeoutMs: 60_000 },
      );

      // Back: a leader again, every replica current.
      await Promise.all(cluster.nodes.filter((n) => !n.isRunning()).map((n) => n.restart()));
      await waitFor(
        async () => {
          const off = await samples(registry, "jetmesh_nats_replica_offline");
          return (
            (await leader()) === 1 &&
            [...off.values()].length === 2 &&
            [...off.values()].every((v) => v === 0) &&
            [...(await samples(registry, "jetmesh_nats_server_healthy")).values()].join() === "1,1,1" &&
            [...(await samples(registry, "jetmesh_nats_meta_leader")).values()].join() === "1,1,1"
          );
        },
        { what: "HEALTH led again with every replica back", timeoutMs: 60_000 },
      );
    } finally {
      await health.stop();
      redis.disconnect();
      await nc.close().catch(() => {});
      await cluster.stop();
      await redisServer.stop();
    }
  });

  it("reconciler - every stream's fill, sequences and oldest age, and JetStream storage (the account's and the server's /jsz), read from a real server", {
    timeout: 60_000,
  }, async () => {
    const nats = await startNats();
    const redisServer = await startRedis();
    const nc = await connect({ servers: nats.url });
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      // A stream with both limits, and one without any (as LEDGER is deployed).
      await jsm.streams.add({
        name: "CAP",
        subjects: ["cap.>"],
        max_bytes: 64 * 1024,
        max_msgs: 40,
        max_age: 3600e9,
      });
      await jsm.streams.add({ name: "NOLIMIT", subjects: ["nolimit.>"] });
      for (let i = 0; i < 10; i++) await js.publish(`cap.${i}`, new Uint8Array(1000));
      await js.publish("nolimit.x", new Uint8Array(10));
      await new Promise((r) => setTimeout(r, 1100));
      const registry = new Registry();
      const h = startInfraHealth({
        nc,
        redis,
        registry,
        logger,
        intervalMs: 60_000,
        timeoutMs: 2000,
        scanBudget: 100,
        streams: ["CAP", "NOLIMIT"],
        monitorUrls: [`http://127.0.0.1:${nats.monitorPort}`],
      });
      await h.sample();
      await h.stop();
      const info = await jsm.streams.info("CAP");
      expect((await samples(registry, "jetmesh_stream_messages")).get("stream=CAP")).toBe(10);
      expect((await samples(registry, "jetmesh_stream_bytes")).get("stream=CAP")).toBe(info.state.bytes);
      const fill = await samples(registry, "jetmesh_stream_fill_ratio");
      expect(fill.get("limit=messages,stream=CAP")).toBe(10 / 40);
      expect(fill.get("limit=bytes,stream=CAP")).toBeCloseTo(info.state.bytes / (64 * 1024), 6);
      // no limit, no ratio: LEDGER's growth is watched through the storage below
      expect([...fill.keys()].some((k) => k.includes("NOLIMIT"))).toBe(false);
      expect((await samples(registry, "jetmesh_stream_first_seq")).get("stream=CAP")).toBe(1);
      expect((await samples(registry, "jetmesh_stream_last_seq")).get("stream=CAP")).toBe(10);
      expect((await samples(registry, "jetmesh_stream_max_age_seconds")).get("stream=CAP")).toBe(3600);
      const age = (await samples(registry, "jetmesh_stream_oldest_message_age_seconds")).get(
        "stream=CAP",
      ) as number;
      expect(age).toBeGreaterThan(1);
      expect(age).toBeLessThan(60);
      // the account: what it uses, and no limit of its own (none configured)
      const account = await jsm.getAccountInfo();
      expect((await samples(registry, "jetmesh_jetstream_storage_bytes")).get("scope=account")).toBe(
        account.storage,
      );
      expect(account.storage).toBeGreaterThan(10_000);
      expect((await samples(registry, "jetmesh_jetstream_storage_limit_bytes")).size).toBe(0);
      // the server's /jsz: storage used and its max_file_store
      const jsz = await nats.monitor<{ storage: number; config: { max_storage: number } }>("/jsz");
      const target = `target=127.0.0.1:${nats.monitorPort}`;
      expect((await samples(registry, "jetmesh_nats_jetstream_storage_bytes")).get(target)).toBe(jsz.storage);
      expect((await samples(registry, "jetmesh_nats_jetstream_storage_limit_bytes")).get(target)).toBe(
        jsz.config.max_storage,
      );
      expect(jsz.config.max_storage).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
      await nc.close().catch(() => {});
      await nats.stop();
      await redisServer.stop();
    }
  });

  it("reconciler - Redis near its maxmemory shows the ratio and its keys by kind; a bounded scan scales the counts; Redis gone is up 0", {
    timeout: 60_000,
  }, async () => {
    const redisServer = await startRedis();
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    // the last part kills the server: its reconnect errors are expected
    redis.on("error", () => {});
    try {
      const pipe = redis.pipeline();
      for (let i = 0; i < 3000; i++) pipe.hset(`ledger:outcome:t-${i}`, "status", "posted", "amount", "100");
      for (let i = 0; i < 1000; i++) pipe.set(`validator:ev-${i}`, "done", "PX", 600_000);
      for (let i = 0; i < 500; i++) pipe.hset(`status:t-${i}`, "state", "posted");
      await pipe.exec();
      const used = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
      // maxmemory just above what is used: more than 80% full
      await redis.config("SET", "maxmemory", String(Math.round(used / 0.9)));

      const read = async (budget: number) => {
        const registry = new Registry();
        const h = startInfraHealth({
          nc,
          redis,
          registry,
          logger,
          intervalMs: 60_000,
          timeoutMs: 2000,
          scanBudget: budget,
          streams: [],
        });
        await h.sample();
        await h.stop();
        return registry;
      };
      const full = await read(100_000);
      const used2 = (await samples(full, "jetmesh_redis_used_memory_bytes")).get("") as number;
      const max = (await samples(full, "jetmesh_redis_maxmemory_bytes")).get("") as number;
      expect(used2 / max).toBeGreaterThan(0.8);
      expect((await samples(full, "jetmesh_redis_up")).get("")).toBe(1);
      expect((await samples(full, "jetmesh_redis_keys")).get("")).toBe(4500);
      expect((await samples(full, "jetmesh_redis_expiring_keys")).get("")).toBe(1000);
      expect((await samples(full, "jetmesh_redis_maxmemory_policy")).get("policy=noeviction")).toBe(1);
      expect(await samples(full, "jetmesh_redis_keys_by_kind")).toEqual(
        new Map([
          ["kind=ledger:outcome:*", 3000],
          ["kind=validator:*", 1000],
          ["kind=status:*", 500],
        ]),
      );
      expect((await samples(full, "jetmesh_redis_keys_scanned_ratio")).get("")).toBe(1);

      // A budget of a fraction of the keys: counts scaled to the keyspace, roughly right.
      const part = await read(1500);
      const ratio = (await samples(part, "jetmesh_redis_keys_scanned_ratio")).get("") as number;
      expect(ratio).toBeGreaterThan(0.2);
      expect(ratio).toBeLessThan(1);
      const kinds = await samples(part, "jetmesh_redis_keys_by_kind");
      expect(kinds.get("kind=ledger:outcome:*")).toBeGreaterThan(2000);
      expect(kinds.get("kind=ledger:outcome:*")).toBeLessThan(4000);

      await redisServer.kill();
      const gone = await read(1000);
      expect((await samples(gone, "jetmesh_redis_up")).get("")).toBe(0);
      expect((await samples(gone, "jetmesh_redis_used_memory_bytes")).size).toBe(0);
    } finally {
      redis.disconnect();
      await nc.close().catch(() => {});
      await nats.stop();
      await redisServer.stop();
    }
  });
});
