// Test support for the ledger as deployed: its bundle as a child process against the
// testkit's nats-server and redis-server, events published straight into its input
// streams, and LEDGER read back with the contracts codec.
import {
  type AnyEnvelope,
  EventTypes,
  LedgerProjection,
  makeEnvelope,
  type StreamName,
  Streams,
  toStreamConfig,
} from "@jetmesh/contracts";
import { bundleOf, type ChildHandle, freePort, spawnProcess, waitFor } from "@jetmesh/testkit";
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import type { Redis } from "ioredis";
import { type Infra, publishEvent, readStream, type StoredEvent } from "./infra.ts";

/** Redeliveries within a second or two, so a test sees retries quickly. */
export const LEDGER_TEST_ENV: Record<string, string> = {
  LOG_LEVEL: "info",
  JETMESH_ACK_WAIT_MS: "1500",
  JETMESH_MAX_DELIVER: "8",
  JETMESH_RETRY_BASE_MS: "50",
  JETMESH_RETRY_MAX_MS: "300",
  JETMESH_PUBLISH_TIMEOUT_MS: "1000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "3000",
  JETMESH_DRAIN_TIMEOUT_MS: "1000",
  LEDGER_EPOCH_CHECK_MS: "200",
  LEDGER_SNAPSHOT_EVERY: "5",
};

/** Creates the streams from their contracts, as the deploy step does (all but `except`). */
export async function provision(jsm: JetStreamManager, except: readonly StreamName[] = []): Promise<void> {
  for (const def of Object.values(Streams)) {
    if (except.includes(def.name)) continue;
    await jsm.streams.add(toStreamConfig(def) as unknown as StreamConfig);
  }
}

/** A running service process with its ops port. */
export interface ServiceProcess {
  readonly child: ChildHandle;
  readonly port: number;
  /** GET an ops path; the status and the body as text. */
  get(path: string): Promise<{ status: number; body: string }>;
}

/** Starts a service's bundle; resolves once its /healthz answers. */
export async function startService(
  service: "ledger" | "payout",
  infra: Pick<Infra, "nats" | "redisServer">,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = await spawnProcess({
    name: service,
    command: process.execPath,
    args: [bundleOf(`services/${service}/src/main.ts`)],
    env: {
      NATS_URL: infra.nats.url,
      REDIS_URL: infra.redisServer.url,
      HTTP_PORT: String(port),
      ...LEDGER_TEST_ENV,
      ...env,
    },
  });
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  await waitFor(
    async () => {
      if (!child.isRunning()) throw new Error(`${service} exited:\n${child.lines().slice(-20).join("\n")}`);
      return (await get("/healthz")).status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 50, what: `${service} /healthz` },
  );
  return { child, port, get };
}

/** Waits until the service's /readyz answers 200. */
export async function waitReady(svc: ServiceProcess, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      if (!svc.child.isRunning()) throw new Error(`exited:\n${svc.child.lines().slice(-20).join("\n")}`);
      return (await svc.get("/readyz")).status === 200;
    },
    { timeoutMs, intervalMs: 50, what: "/readyz 200" },
  );
}

type Core = { transferId: string; from: string; to: string; amountMinor: number; currency: string };
const core = (transferId: string, from: string, to: string, amountMinor: number): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency: "EUR",
});

/** Publishes transfers.scored (as risk would) into RISK. */
export async function score(
  infra: Pick<Infra, "js">,
  transferId: string,
  from: string,
  to: string,
  amountMinor: number,
  decision: "allow" | "deny" = "allow",
): Promise<AnyEnvelope> {
  const env = makeEnvelope(
    EventTypes.TransferScored,
    { ...core(transferId, from, to, amountMinor), score: 5, decision, factors: [] },
    {
      eventId: `sc-${transferId}`,
      correlationId: transferId,
      causationId: `va-${transferId}`,
      producer: "risk",
    },
  ) as AnyEnvelope;
  await publishEvent(infra.js, env);
  return env;
}

/** Publishes payouts.failed (as payout would) for a posting in LEDGER. */
export async function failPayout(infra: Pick<Infra, "js">, posting: AnyEnvelope): Promise<AnyEnvelope> {
  const d = posting.data as Core;
  const env = makeEnvelope(
    EventTypes.PayoutFailed,
    {
      ...core(d.transferId, d.from, d.to, d.amountMinor),
      reason: "account closed",
      bankStatus: 422,
    },
    {
      eventId: `pf-${d.transferId}`,
      correlationId: d.transferId,
      causationId: posting.eventId,
      producer: "payout",
    },
  ) as AnyEnvelope;
  await publishEvent(infra.js, env);
  return env;
}

/** Waits until LEDGER holds an event of `type` for `transferId`; returns it. */
export async function waitForLedger(
  jsm: JetStreamManager,
  transferId: string,
  types: readonly string[],
  timeoutMs = 20_000,
): Promise<StoredEvent> {
  return waitFor(
    async () =>
      (await readStream(jsm, Streams.LEDGER.name)).find(
        (e) => e.env?.correlationId === transferId && types.includes(e.env.type),
      ),
    { timeoutMs, intervalMs: 50, what: `${types.join("|")} of ${transferId} in LEDGER` },
  );
}

/** Balances by folding every posting and reversal in LEDGER, as the log states them. */
export function foldBalances(events: readonly StoredEvent[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const add = (acc: string, v: bigint) => out.set(acc, (out.get(acc) ?? 0n) + v);
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const env = e.env;
    if (env?.type !== EventTypes.LedgerPosted && env?.type !== EventTypes.LedgerReversed) continue;
    const sign = env.type === EventTypes.LedgerPosted ? 1n : -1n;
    add(env.data.from, -sign * BigInt(env.data.amountMinor));
    add(env.data.to, sign * BigInt(env.data.amountMinor));
  }
  return out;
}

/** The ledger's Redis projection of one account's EUR balance. */
export async function servedBalance(redis: Redis, account: string): Promise<bigint> {
  return BigInt((await redis.hget(LedgerProjection.balanceKey(account), "EUR")) ?? "0");
}

/** Waits until Redis serves the fold of LEDGER for every account of `accounts`. */
export async function waitServedEqualsFold(
  infra: Pick<Infra, "jsm" | "redis">,
  accounts: readonly string[],
  timeoutMs = 20_000,
): Promise<void> {
  let last = "";
  await waitFor(
    async () => {
      const fold = foldBalances(await readStream(infra.jsm, Streams.LEDGER.name));
      const diffs: string[] = [];
      for (const a of accounts) {
        const served = await servedBalance(infra.redis, a);
        if (served !== (fold.get(a) ?? 0n)) diffs.push(`${a}: served ${served}, fold ${fold.get(a) ?? 0n}`);
      }
      last = diffs.join("; ");
      return diffs.length === 0;
    },
    { timeoutMs, intervalMs: 100, what: "served balances = fold of LEDGER" },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${last}`);
  });
}
