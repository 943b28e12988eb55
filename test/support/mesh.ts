// End-to-end support: the real mesh (every service as its own process, started by the
// local runner's library) on a private nats-server and redis-server from the testkit,
// plus helpers that check the invariants from the streams, never through the services.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { StreamLimits } from "@jetmesh/contracts";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  type AcceptedTransfer,
  type BalanceSource,
  checkInvariants,
  type InvariantName,
  type InvariantReport,
  type NatsServerHandle,
  type RedisSentinelHandle,
  type RedisServerHandle,
  startNats,
  startRedis,
  startRedisSentinel,
} from "@jetmesh/testkit";
// The runner is a workspace package that test/package.json does not list (yet); its public
// entry point is src/index.ts, the file its package.json `exports` names.
import {
  type MeshHandle,
  REFUSED_BANK_ACCOUNTS,
  type ServiceName,
  startMesh,
  waitForQuiet,
} from "@jetmesh/mesh";

export { REFUSED_BANK_ACCOUNTS };

/**
 * Protocol settings short enough for tests: a crashed consumer's messages come back
 * after 3 s. The bank timeout (2 s) stays below the payout's handler timeout (80% of
 * the ack wait), and MaxDeliver leaves room for a ledger restore.
 */
export const E2E_SETTINGS: Readonly<Record<string, string>> = {
  JETMESH_ACK_WAIT_MS: "3000",
  JETMESH_MAX_DELIVER: "20",
  JETMESH_RETRY_BASE_MS: "50",
  JETMESH_RETRY_MAX_MS: "1000",
  JETMESH_PUBLISH_TIMEOUT_MS: "2000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "5000",
  JETMESH_DRAIN_TIMEOUT_MS: "2000",
};

/** A mesh on servers the test owns (so it can wipe Redis or kill NATS). */
export interface TestMesh {
  readonly mesh: MeshHandle;
  readonly nats: NatsServerHandle;
  /** The Redis server (with `sentinel`: the first primary). */
  readonly redis: RedisServerHandle;
  /** The primary, replica and sentinels, when started with `sentinel`. */
  readonly sentinel?: RedisSentinelHandle;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  stop(): Promise<void>;
}

/**
 * Starts nats-server and redis-server on free ports (never the system ones), then the
 * mesh on them through the runner's `startMesh`, with {@link E2E_SETTINGS} and
 * `serviceEnv` per service.
 */
export async function startTestMesh(
  opts: {
    serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
    /** On top of {@link E2E_SETTINGS}, for every service. */
    env?: Record<string, string>;
    /** More redis-server arguments (`--maxmemory 64mb`). */
    redisArgs?: readonly string[];
    /** Streams created with these limits instead of their definitions' (test only). */
    streamLimits?: Readonly<Record<string, StreamLimits>>;
    /** The schema registry the deploy step publishes (default this tree's). */
    registry?: ReadonlyMap<string, unknown>;
    /** Services started from another bundle (an older build). */
    bundles?: Partial<Record<ServiceName, string>>;
    /** Redis as a primary, a replica and three sentinels the services find it through. */
    sentinel?: boolean;
  } = {},
): Promise<TestMesh> {
  const [nats, sentinel] = await Promise.all([startNats(), opts.sentinel ? startRedisSentinel() : undefined]);
  const redis = sentinel
    ? await sentinel.primary()
    : await startRedis(opts.redisArgs ? { extraArgs: opts.redisArgs } : {});
  const dataDir = await mkdtemp(join(tmpdir(), "jetmesh-e2e-"));
  const mesh = await startMesh({
    natsUrl: nats.url,
    natsMonitorUrl: `http://127.0.0.1:${nats.monitorPort}`,
    redisUrl: redis.url,
    dataDir,
    removeDataOnStop: true,
    env: { ...E2E_SETTINGS, ...sentinel?.env, ...opts.env },
    serviceEnv: opts.serviceEnv ?? {},
    ...(opts.streamLimits ? { streamLimits: opts.streamLimits } : {}),
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(opts.bundles ? { bundles: opts.bundles } : {}),
    refuseAccounts: REFUSED_BANK_ACCOUNTS,
    readyTimeoutMs: 90_000,
  });
  const nc = await connect({ servers: nats.url, name: "e2e" });
  const jsm = await jetstreamManager(nc);
  return {
    mesh,
    nats,
    redis,
    ...(sentinel ? { sentinel } : {}),
    nc,
    jsm,
    async stop() {
      await nc.close().catch(() => {});
      await mesh.stop();
      await Promise.all([nats.stop(), sentinel ? sentinel.stop() : redis.stop()]);
    },
  };
}

/** Waits until every durable consumer is drained and nothing moves, then runs the checker. */
export async function quietThenCheck(
  t: TestMesh,
  accepted: readonly AcceptedTransfer[],
  balances: BalanceSource,
  only?: readonly InvariantName[],
): Promise<InvariantReport> {
  await waitForQuiet(t.jsm, { timeoutMs: 120_000 });
  return checkInvariants({
    nc: t.nc,
    accepted,
    balances,
    minters: t.mesh.minters,
    ...(only ? { only } : {}),
  });
}

/** The report's violations as readable lines, for an assertion message. */
export function describeViolations(r: InvariantReport): string {
  return r.violations
    .slice(0, 10)
    .map(
      (v) =>
        `${v.invariant} ${v.message} [${v.events.map((e) => `${e.type}@${e.stream}:${e.seq}`).join(", ")}]`,
    )
    .join("\n");
}

/** One POST /v1/transfers with an API key; retries 503 and 409 "in progress" with the same key. */
export async function postTransfer(
  gatewayUrl: string,
  key: string,
  body: { from: string; to: string; amountMinor: number; currency: string },
  apiKey: string,
): Promise<{ status: number; transferId: string; eventId: string }> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${gatewayUrl}/v1/transfers`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": key,
        authorization: `Bearer ${apiKey}`,
      },
      body: JSON.stringify(body),
    });
    const json = (await res.json().catch(() => ({}))) as { transferId?: string; eventId?: string };
    if ((res.status === 202 || res.status === 200) && json.transferId) {
      return { status: res.status, transferId: json.transferId, eventId: json.eventId ?? "" };
    }
    if ((res.status === 503 || res.status === 409) && attempt < 20) {
      await sleep(250 * attempt);
      continue;
    }
    throw new Error(`POST ${key} answered ${res.status}: ${JSON.stringify(json)}`);
  }
}

/** Reads a service's /readyz body (200 or 503). */
export async function readiness(
  url: string,
): Promise<{ ready: boolean; checks: Record<string, Record<string, unknown>> }> {
  const res = await fetch(`${url}/readyz`);
  return (await res.json()) as { ready: boolean; checks: Record<string, Record<string, unknown>> };
}

/** Resolves with the exit of a service that is expected to die at a crash point. */
export async function expectCrash(
  t: TestMesh,
  name: ServiceName,
  timeoutMs = 60_000,
): Promise<{ code: number | null; signal: string | null }> {
  const child = t.mesh.service(name).child;
  if (!child) throw new Error(`${name} is not running`);
  const exit = await Promise.race([
    child.exited,
    sleep(timeoutMs).then(() => {
      throw new Error(`${name} did not reach its crash point within ${timeoutMs} ms`);
    }),
  ]);
  return exit;
}
