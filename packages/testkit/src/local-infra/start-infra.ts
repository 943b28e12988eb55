import { rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type NatsClusterHandle, startNatsCluster } from "./nats-cluster.ts";
import { type NatsServerHandle, startNats } from "./nats-server.ts";
import { type RedisServerHandle, startRedis } from "./redis-server.ts";

/** Options of {@link startInfra}. */
export interface StartInfraOptions {
  /** Reuse the NATS server at this URL when one with JetStream answers; otherwise start one. */
  readonly natsUrl?: string;
  /** Reuse the Redis at this URL when it answers PING; otherwise start one. */
  readonly redisUrl?: string;
  /** One nats-server (default) or a three-node cluster (never reused). */
  readonly topology?: "single" | "cluster";
  /** JetStream store of a started single server, wiped first (default: a temp folder). */
  readonly storeDir?: string;
  /** Redis persistence of a started redis-server (startRedis's default when unset). */
  readonly redisPersistence?: boolean;
  /** Told what happens (one short line each). */
  readonly onStatus?: (line: string) => void;
}

/** The servers a runner works against. */
export interface Infra {
  /** For clients: the server, or every node comma-joined for a cluster. */
  readonly natsUrl: string;
  readonly redisUrl: string;
  /** What this call started; undefined when reused (or for the other topology). */
  readonly nats: NatsServerHandle | undefined;
  readonly cluster: NatsClusterHandle | undefined;
  readonly redis: RedisServerHandle | undefined;
  /** Stops what this call started, never a reused server. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The local infrastructure of the runners (`pnpm mesh`, `pnpm chaos`, `pnpm bench`):
 * nats-server (JetStream) and redis-server on free loopback ports, started side by side,
 * unless `natsUrl` / `redisUrl` answer. Every process is registered with the testkit, so
 * it dies with this process.
 * @throws when a server does not start; what was started is stopped first.
 */
export async function startInfra(o: StartInfraOptions = {}): Promise<Infra> {
  const status = o.onStatus ?? (() => {});
  const startNatsSide = async (): Promise<{
    nats?: NatsServerHandle;
    cluster?: NatsClusterHandle;
    url: string;
  }> => {
    if (o.topology === "cluster") {
      const cluster = await startNatsCluster({ size: 3 });
      status(`nats: started a 3-node nats-server cluster at ${cluster.url}`);
      return { cluster, url: cluster.url };
    }
    if (o.natsUrl && (await natsAnswers(o.natsUrl))) {
      status(`nats: reusing ${o.natsUrl}`);
      return { url: o.natsUrl };
    }
    if (o.natsUrl) status(`nats: nothing with JetStream answers at ${o.natsUrl}; starting nats-server`);
    if (o.storeDir) await rm(o.storeDir, { recursive: true, force: true });
    const nats = await startNats(o.storeDir ? { storeDir: o.storeDir } : {});
    status(`nats: started nats-server at ${nats.url}${o.storeDir ? ` (store ${o.storeDir})` : ""}`);
    return { nats, url: nats.url };
  };
  const startRedisSide = async (): Promise<{ redis?: RedisServerHandle; url: string }> => {
    if (o.redisUrl && (await redisAnswers(o.redisUrl))) {
      status(`redis: reusing ${o.redisUrl}`);
      return { url: o.redisUrl };
    }
    if (o.redisUrl) status(`redis: nothing answers at ${o.redisUrl}; starting redis-server`);
    const redis = await startRedis(
      o.redisPersistence === undefined ? {} : { persistence: o.redisPersistence },
    );
    status(`redis: started redis-server at ${redis.url}`);
    return { redis, url: redis.url };
  };
  const [n, r] = await Promise.allSettled([startNatsSide(), startRedisSide()]);
  const started = {
    nats: n.status === "fulfilled" ? n.value.nats : undefined,
    cluster: n.status === "fulfilled" ? n.value.cluster : undefined,
    redis: r.status === "fulfilled" ? r.value.redis : undefined,
  };
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= Promise.all([started.nats?.stop(), started.cluster?.stop(), started.redis?.stop()]).then(
      () => {},
    );
    return stopped;
  };
  if (n.status === "rejected" || r.status === "rejected") {
    await stop().catch(() => {});
    throw n.status === "rejected" ? n.reason : (r as PromiseRejectedResult).reason;
  }
  return { natsUrl: n.value.url, redisUrl: r.value.url, ...started, stop };
}

/** True when a NATS server with JetStream answers at `url` within a second. */
async function natsAnswers(url: string): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, timeout: 1000, reconnect: false, name: "infra-probe" });
    try {
      await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}

/** True when a Redis answers PING at `url` within a second (RESP by hand: no client needed). */
function redisAnswers(url: string): Promise<boolean> {
  let host = "127.0.0.1";
  let port = 6379;
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = u.port ? Number(u.port) : port;
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((done) => {
    const socket = tcpConnect({ host, port });
    let got = "";
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once("connect", () => socket.write("*1\r\n$4\r\nPING\r\n"));
    // A password-protected Redis answers -NOAUTH: it is there, the services' URL carries the password.
    socket.on("data", (c: Buffer) => {
      got += c.toString("utf8");
      if (got.includes("\r\n")) finish(got.startsWith("+PONG") || got.startsWith("-NOAUTH"));
    });
    socket.once("error", () => finish(false));
  });
}
