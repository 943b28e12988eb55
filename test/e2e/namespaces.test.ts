// Dev isolation (JETMESH_NAMESPACE): two whole meshes, in namespaces `a` and `b`, on ONE
// nats-server and ONE redis-server the test starts. Each takes its own traffic; each
// namespace's invariants I1 to I6 hold on its own streams, neither holds the other's events,
// and every name on the servers (streams, subjects, buckets, Redis keys) carries its prefix.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { namesFor, PipelineStreams, StreamNames } from "@jetmesh/contracts";
import { type MeshHandle, sendTraffic, startMesh, waitForQuiet } from "@jetmesh/mesh";
import {
  checkInvariants,
  gatewayBalances,
  type NatsServerHandle,
  type RedisServerHandle,
  readStoredEvents,
  redisBalances,
  startNats,
  startRedis,
  stopAllProcesses,
  streamPosition,
} from "@jetmesh/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { describeViolations, E2E_SETTINGS, REFUSED_BANK_ACCOUNTS } from "../support/mesh.ts";

describe("e2e namespaces", () => {
  let nats: NatsServerHandle | undefined;
  let redisServer: RedisServerHandle | undefined;
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  const meshes: MeshHandle[] = [];
  afterAll(async () => {
    redis?.disconnect();
    await nc?.close().catch(() => {});
    for (const m of meshes) await m.stop();
    await Promise.all([nats?.stop(), redisServer?.stop()]);
    await stopAllProcesses();
  });

  it("namespaces - two meshes on one NATS and one Redis keep I1 to I6 each and never see each other", async () => {
    [nats, redisServer] = await Promise.all([startNats(), startRedis()]);
    const natsUrl = nats.url;
    const redisUrl = redisServer.url;
    // One after the other: two meshes starting at once on two cores only slow each other.
    for (const namespace of ["a", "b"]) {
      meshes.push(
        await startMesh({
          natsUrl,
          redisUrl,
          namespace,
          dataDir: await mkdtemp(join(tmpdir(), `jetmesh-e2e-ns-${namespace}-`)),
          removeDataOnStop: true,
          env: E2E_SETTINGS,
          refuseAccounts: REFUSED_BANK_ACCOUNTS,
          readyTimeoutMs: 90_000,
        }),
      );
    }
    const [a, b] = meshes as [MeshHandle, MeshHandle];
    expect([a.namespace, b.namespace]).toEqual(["a", "b"]);
    // Both meshes serve at once; different amounts of traffic, so a count that mixed them shows.
    const send = (m: MeshHandle, transfers: number) =>
      sendTraffic({
        gatewayUrl: m.gatewayUrl,
        apiKeys: m.apiKeys,
        transfers,
        rate: 150,
        accounts: 12,
        runId: `ns-${m.namespace}`,
        refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
      });
    const [ta, tb] = await Promise.all([send(a, 300), send(b, 180)]);
    for (const t of [ta, tb]) {
      expect(t.failed).toEqual([]);
      expect(t.retries.mismatched).toEqual([]);
    }

    nc = await connect({ servers: natsUrl, name: "e2e-namespaces" });
    const jsm = await jetstreamManager(nc);
    redis = new Redis(redisUrl);
    const idsOf = (t: typeof ta) => new Set(t.accepted.map((x) => x.transferId));
    for (const [m, t, other] of [
      [a, ta, tb],
      [b, tb, ta],
    ] as const) {
      const ns = m.namespace;
      await waitForQuiet(jsm, { namespace: ns, timeoutMs: 120_000 });
      // Balances as the gateway serves them and as the ledger's projection holds them under
      // the namespace's Redis prefix: I3 and I4 hold against both.
      for (const balances of [
        gatewayBalances(m.gatewayUrl, { apiKey: m.apiKeys.operator }),
        redisBalances(redisUrl, { namespace: ns }),
      ]) {
        const report = await checkInvariants({
          nc,
          namespace: ns,
          accepted: t.accepted,
          accounts: t.accounts,
          balances,
          minters: m.minters,
        });
        await balances.close?.();
        expect(report.violations, `${ns}: ${describeViolations(report)}`).toEqual([]);
        expect(report.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"]);
        const c = report.counts;
        // Counts are this namespace's traffic, exactly: one request per accepted transfer.
        expect(c.accepted).toBe(t.accepted.length);
        expect(c.lost + c.multiple).toBe(0);
        expect(c.events[StreamNames.Ingress]).toBe(t.accepted.length);
        expect(c.posted).toBeGreaterThan(0);
      }
      // Neither sees the other's messages: every event of every pipeline stream of this
      // namespace belongs to one of its own transfers, on a subject under its prefix.
      const own = idsOf(t);
      const others = idsOf(other);
      const names = namesFor(ns);
      for (const stream of PipelineStreams) {
        const server = names.stream(stream);
        const events = await readStoredEvents(jetstream(nc), server, await streamPosition(jsm, server));
        for (const e of events) {
          expect(e.subject.startsWith(`${ns}.`), `${server} ${e.subject}`).toBe(true);
          const id = e.env?.correlationId ?? "";
          expect(own.has(id), `${server} seq ${e.seq} transfer ${id} of ${ns}`).toBe(true);
          expect(others.has(id)).toBe(false);
        }
      }
      // The durables keep their stage's name, inside the namespace's streams (the reconciler's
      // ordered readers are ephemeral).
      const durables: string[] = [];
      for await (const ci of jsm.consumers.list(names.stream(StreamNames.Ingress)))
        if (ci.config.durable_name) durables.push(ci.name);
      expect(durables.sort()).toEqual(["gateway-status", "validator"]);
    }

    // Every name on the servers is one of a namespace's: production's stay untouched.
    const streams: string[] = [];
    for await (const s of jsm.streams.names()) streams.push(s);
    expect(streams.filter((s) => !/^(KV_)?[ab]_/.test(s))).toEqual([]);
    for (const ns of ["a", "b"]) {
      for (const s of Object.values(StreamNames)) expect(streams).toContain(`${ns}_${s}`);
      expect(streams).toContain(`KV_${ns}_jetmesh-positions`);
      expect(streams).toContain(`KV_${ns}_jetmesh-schemas`);
      expect(streams).toContain(`KV_${ns}_ledger-snapshots`);
      expect(streams).toContain(`KV_${ns}_payout-records`);
    }
    const keys = await redis.keys("*");
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !k.startsWith("a:") && !k.startsWith("b:"))).toEqual([]);
    // The stages' idempotency keys (Lua scripts' KEYS) and the ledger's projection, in both.
    for (const ns of ["a", "b"]) {
      expect(keys.some((k) => k.startsWith(`${ns}:validator:`))).toBe(true);
      expect(keys.some((k) => k.startsWith(`${ns}:ledger:bal:`))).toBe(true);
    }
  }, 420_000);
});
