// The ledger dies (SIGKILL) right after its effect (its decision appended to LEDGER, the
// commit point) and before the input is marked done and acked, in the middle of real
// traffic; a new ledger process takes over and gets the input again. Nothing may be
// posted twice and the balances must still be the log's.
import { Streams } from "@jetmesh/contracts";
import { redisBalances, stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sendTraffic } from "@jetmesh/mesh";
import {
  describeViolations,
  expectCrash,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

const ACCOUNTS = 10;
// 2 fundings per account come first; the crash lands in the transfers after them.
const CRASH_AFTER = 2 * ACCOUNTS + 25;

describe("e2e ledger crash", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - a ledger crash between its append and its ack posts nothing twice", async () => {
    t = await startTestMesh({
      serviceEnv: {
        ledger: { JETMESH_CRASH_AT: "after-effect", JETMESH_CRASH_AFTER: String(CRASH_AFTER) },
      },
    });
    const mesh = t.mesh;
    const traffic = sendTraffic({
      gatewayUrl: mesh.gatewayUrl,
      apiKeys: mesh.apiKeys,
      transfers: 200,
      rate: 200,
      accounts: ACCOUNTS,
      maxInFlight: 32,
      runId: "e2e-ledger-crash",
      refusedBankAccounts: REFUSED_BANK_ACCOUNTS,
    });
    const exit = await expectCrash(t, "ledger", 120_000);
    expect(exit.signal).toBe("SIGKILL");
    const log = await mesh.services.ledger.log();
    expect(log).toContain("crash point after-effect reached");
    // The decision of the input whose ack was lost is in the log: the redelivery must find it there.
    const before = await t.jsm.streams.info(Streams.LEDGER.name);
    expect(before.state.messages).toBeGreaterThan(0);

    // A new process; "" unsets the crash point.
    await mesh.services.ledger.start({ JETMESH_CRASH_AT: "" });
    const sent = await traffic;
    expect(sent.retries.mismatched).toEqual([]);
    expect(sent.failed).toEqual([]);

    const report = await quietThenCheck(t, sent.accepted, redisBalances(t.redis.url));
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.checked).toEqual(["I1", "I2", "I3", "I4", "I5", "I6", "S1", "M1"]);
    expect(report.counts.lost + report.counts.multiple).toBe(0);
    expect(report.counts.posted).toBeGreaterThan(CRASH_AFTER);
    // One terminal ledger event per transfer that reached the ledger: the republished
    // posting of the crashed attempt was stored once.
    const ledgerEvents = report.counts.events[Streams.LEDGER.name] ?? 0;
    expect(ledgerEvents).toBe(report.counts.posted + report.counts.declined + 2 * report.counts.reversed);
  }, 240_000);
});
