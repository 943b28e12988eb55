// `jetmesh rebuild` as an operator runs it: a child process against a real nats-server holding
// LEDGER and a real redis-server holding the projection, kept by a running ledger (its follower
// and Redis projection, wired as main.ts wires them).
import { StreamNames } from "@jetmesh/contracts";
import { createLedgerStore, LedgerKeys } from "@jetmesh/ledger/store";
import {
  type Infra,
  type LedgerParts,
  posted,
  provision,
  publishEvent,
  reversed,
  startInfra,
  startLedgerParts,
} from "@jetmesh/ledger/test-support";
import { waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RepairAuditEvent } from "./audit.ts";
import { jetmesh } from "./testing.ts";

const core = (i: number, amountMinor = 100) => ({
  transferId: `t-rb-${i}`,
  from: "external",
  to: `acc-${i % 2 === 0 ? "a" : "b"}`,
  amountMinor,
  currency: "EUR",
});

describe("jetmesh rebuild against real nats-server and redis-server", () => {
  let infra: Infra;
  let parts: LedgerParts;
  let args: (...extra: string[]) => string[];

  const audits = async (): Promise<RepairAuditEvent[]> => {
    const info = await infra.jsm.streams.info(StreamNames.Audit);
    const out: RepairAuditEvent[] = [];
    for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
      const m = await infra.jsm.streams.getMessage(StreamNames.Audit, { seq: q });
      if (m?.subject === "audit.rebuild-repair") out.push(m.json<RepairAuditEvent>());
    }
    return out;
  };

  beforeAll(async () => {
    infra = await startInfra();
    await provision(infra.jsm, infra.logger);
    for (let i = 0; i < 4; i++) await publishEvent(infra.js, posted(core(i, 100 + i)));
    await publishEvent(infra.js, reversed(core(1, 101)));
    const store = createLedgerStore(infra.redis);
    parts = await startLedgerParts({ nc: infra.nc, logger: infra.logger, store, epochCheckMs: 50 });
    await waitFor(async () => parts.projection?.ready() === true && (await store.appliedSeq()) === 5, {
      what: "the running ledger's projection at seq 5",
    });
    args = (...extra) => ["rebuild", "--server", infra.nats.url, "--redis", infra.redisServer.url, ...extra];
  }, 60_000);

  afterAll(async () => {
    await parts?.stop();
    await infra?.close();
  });

  it("ops - rebuild --check exits 0 when the projection is the fold of LEDGER", async () => {
    const r = await jetmesh(args("--check"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "folded LEDGER to seq 5 (4 transfers, 3 accounts); projection applied-seq 5; 0 difference(s)",
    );
  });

  it("ops - rebuild --check prints each difference and exits 1; progress only when asked", async () => {
    await infra.redis.hset(LedgerKeys.balance("acc-a"), "EUR", "999");
    await infra.redis.del(LedgerKeys.outcome("t-rb-3"));
    const r = await jetmesh(args("--settle-ms", "50"));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("balance acc-a EUR: log 202, projection 999");
    expect(r.stdout).toContain("outcome t-rb-3: log posted/allow, projection (none)");
    expect(r.stdout).toMatch(/total EUR: projection sums to \d+, not 0/);
    expect(r.stderr).toBe("jetmesh: the projection differs from the fold of LEDGER\n");

    const json = await jetmesh(args("--settle-ms", "50", "--json", "--progress"));
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ foldSeq: 5, appliedSeq: 5, epoch: true });
    expect(JSON.parse(json.stdout).differences).toHaveLength(3);
    expect(json.stderr).toContain("folding LEDGER: seq 5 of 5 (100%)\n");
  });

  it("ops - rebuild --repair refuses while another process holds the restore lock", async () => {
    await infra.redis.set(LedgerKeys.restoreLock, "someone-else", "PX", 30_000);
    try {
      const r = await jetmesh(args("--repair", "--settle-ms", "50"));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^jetmesh: another process is restoring the projection .*nothing repaired\n$/);
      expect(await infra.redis.hget(LedgerKeys.balance("acc-a"), "EUR")).toBe("999");
    } finally {
      await infra.redis.del(LedgerKeys.restoreLock);
    }
  });

  it("ops - rebuild --repair restores the fold under a running ledger, which follows on, and is audited", async () => {
    const r = await jetmesh(args("--repair", "--settle-ms", "50", "--actor", "alice"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("repaired: the projection was restored from the fold at seq 5");
    expect(await infra.redis.hget(LedgerKeys.balance("acc-a"), "EUR")).toBe("202");
    expect(await infra.redis.hget(LedgerKeys.outcome("t-rb-3"), "status")).toBe("posted");
    expect(await infra.redis.get(LedgerKeys.restoreLock)).toBeNull();

    // The running ledger's projection goes on from the restored applied-seq.
    await publishEvent(infra.js, posted(core(4, 104)));
    const store = createLedgerStore(infra.redis);
    await waitFor(async () => (await store.appliedSeq()) === 6, { what: "the ledger applied seq 6" });
    expect(await infra.redis.hget(LedgerKeys.balance("acc-a"), "EUR")).toBe("306");
    const again = await jetmesh(args("--check"));
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("seq 6");

    const noop = await jetmesh(args("--repair"));
    expect([noop.code, noop.stdout]).toEqual([0, expect.stringContaining("in sync: nothing repaired")]);

    const events = await audits();
    expect(events.map((e) => [e.actor, e.outcome, e.restoredSeq, e.differenceCount])).toEqual([
      ["alice", "repaired", 5, 3],
      [expect.any(String), "in-sync", null, 0],
    ]);
    expect(events[0]?.differences).toContain("balance acc-a EUR: log 202, projection 999");
    expect(events[0]?.remaining).toEqual([]);
  });

  it("ops - rebuild says what is wrong in one line: bad usage, unreachable redis", async () => {
    const both = await jetmesh(args("--check", "--repair"));
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^error: option '--check' cannot be used with option '--repair'\n$/);
    const noRedis = await jetmesh(["rebuild", "--server", infra.nats.url, "--redis", "redis://127.0.0.1:1"]);
    expect(noRedis.code).toBe(1);
    expect(noRedis.stderr).toMatch(/^jetmesh: cannot reach redis at redis:\/\/127\.0\.0\.1:1: .*\n$/);
    const badSentinel = await jetmesh(args("--check"), {
      env: { REDIS_SENTINELS: "127.0.0.1:70000", REDIS_SENTINEL_NAME: "jetmesh" },
    });
    expect(badSentinel.code).toBe(2);
    expect(badSentinel.stderr).toBe(
      'jetmesh: REDIS_SENTINELS ("127.0.0.1:70000"): port 70000 of 127.0.0.1; allowed: 1 to 65535\n',
    );
  });
});
