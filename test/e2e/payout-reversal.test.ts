// A payout the bank refuses is compensated by exactly one ledger.reversed, however often
// the refusal comes back: the payout dies right after publishing payouts.failed (its
// redelivery calls the bank again and republishes), the ledger dies right after
// publishing ledger.reversed (its redelivery runs the reversal again), and the stored
// payouts.failed is then republished as if the duplicate window had passed, and once more
// as a new event of the same transfer.
import { randomBytes } from "node:crypto";
import {
  type AnyEnvelope,
  encodeEvent,
  eventHeaders,
  EventTypes,
  Headers,
  LedgerProjection,
  makeEnvelope,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import { readStoredEvents, redisBalances, stopAllProcesses, streamPosition, waitFor } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { waitForQuiet } from "@jetmesh/mesh";
import {
  describeViolations,
  expectCrash,
  postTransfer,
  quietThenCheck,
  REFUSED_BANK_ACCOUNTS,
  startTestMesh,
  type TestMesh,
} from "../support/mesh.ts";

const FUNDING = 100_000;
const PAYOUT = 4_200;

describe("e2e refused payout", () => {
  let t: TestMesh | undefined;
  afterAll(async () => {
    await t?.stop();
    await stopAllProcesses();
  });

  it("e2e - a refused payout is reversed exactly once, even when the refusal is redelivered", async () => {
    // payout handles 2 postings (the funding, then the payout) and dies after publishing
    // for the 2nd; the ledger dies after publishing for its 3rd input (funding posting,
    // payout posting, then the reversal).
    t = await startTestMesh({
      serviceEnv: {
        payout: { JETMESH_CRASH_AT: "after-publish", JETMESH_CRASH_AFTER: "2" },
        ledger: { JETMESH_CRASH_AT: "after-publish", JETMESH_CRASH_AFTER: "3" },
      },
    });
    const { mesh, jsm, nc } = t;
    const js = jetstream(nc);
    const stored = async (stream: string) => readStoredEvents(js, stream, await streamPosition(jsm, stream));
    const ofType = async (stream: string, type: string) =>
      (await stored(stream)).filter((e) => e.env?.type === type);

    const funding = await postTransfer(
      mesh.gatewayUrl,
      "fund-acc-alice",
      { from: "external", to: "acc-alice", amountMinor: FUNDING, currency: "EUR" },
      mesh.apiKeys.operator,
    );
    await waitFor(async () => (await ofType(StreamNames.Ledger, EventTypes.LedgerPosted)).length === 1, {
      timeoutMs: 60_000,
      what: "the funding posting",
    });
    const refused = REFUSED_BANK_ACCOUNTS[0];
    // acc-alice belongs to no customer of the mesh: the operator (every account) sends it.
    const payout = await postTransfer(
      mesh.gatewayUrl,
      "payout-alice-1",
      { from: "acc-alice", to: refused, amountMinor: PAYOUT, currency: "EUR" },
      mesh.apiKeys.operator,
    );

    // The payout stage stored payouts.failed, then died before marking its input done.
    expect((await expectCrash(t, "payout")).signal).toBe("SIGKILL");
    expect(await mesh.services.payout.log()).toContain("crash point after-publish reached");
    await mesh.services.payout.start({ JETMESH_CRASH_AT: "" });
    // The ledger reversed, published ledger.reversed, then died before acking payouts.failed.
    expect((await expectCrash(t, "ledger")).signal).toBe("SIGKILL");
    expect(await mesh.services.ledger.log()).toContain("crash point after-publish reached");
    await mesh.services.ledger.start({ JETMESH_CRASH_AT: "" });
    await waitForQuiet(jsm, { timeoutMs: 60_000 });

    // Both redeliveries ran again (the bank answered its stored 422, the ledger's script
    // its stored reversal) and their outputs were dropped by the duplicate window.
    const failed = await ofType(StreamNames.Payouts, EventTypes.PayoutFailed);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.env!.correlationId).toBe(payout.transferId);
    expect(await ofType(StreamNames.Ledger, EventTypes.LedgerReversed)).toHaveLength(1);

    // The refusal again, as a republish past the duplicate window (a new Nats-Msg-Id for
    // the same bytes), and as a new event of the same transfer.
    const original = failed[0]!.env as AnyEnvelope;
    const republish = async (env: AnyEnvelope, msgID: string) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(env))) h.set(k, v);
      h.set(Headers.TraceParent, failed[0]!.headers.traceparent as string);
      const ack = await js.publish(
        subjectFor(env.type, (env.data as { from: string }).from),
        encodeEvent(env),
        {
          msgID,
          headers: h,
        },
      );
      expect(ack.duplicate).toBe(false);
    };
    await republish(original, `${original.eventId}:after-window`);
    const sibling = makeEnvelope(EventTypes.PayoutFailed, original.data as never, {
      eventId: `payout-replay-${randomBytes(4).toString("hex")}`,
      correlationId: original.correlationId,
      causationId: original.causationId,
      producer: "payout",
    });
    await republish(sibling, sibling.eventId);
    await waitForQuiet(jsm, { timeoutMs: 60_000 });

    expect(await ofType(StreamNames.Payouts, EventTypes.PayoutFailed)).toHaveLength(3);
    const reversed = await ofType(StreamNames.Ledger, EventTypes.LedgerReversed);
    expect(reversed).toHaveLength(1);
    expect(reversed[0]!.env!.causationId).toBe(original.eventId);
    expect(reversed[0]!.env!.data).toMatchObject({ from: "acc-alice", to: refused, amountMinor: PAYOUT });

    // The money is back where it was, once; the bank paid nothing.
    const redis = new Redis(t.redis.url);
    try {
      expect(await redis.hget(LedgerProjection.balanceKey("acc-alice"), "EUR")).toBe(String(FUNDING));
      expect(await redis.hget(LedgerProjection.balanceKey(refused), "EUR")).toBe("0");
    } finally {
      redis.disconnect();
    }
    const paid = (await (await fetch(`${mesh.bankUrl}/admin/payouts`)).json()) as { payouts: unknown[] };
    expect(paid.payouts).toEqual([]);

    const report = await quietThenCheck(
      t,
      [funding, payout].map((a) => ({ transferId: a.transferId })),
      redisBalances(t.redis.url),
    );
    expect(report.violations, describeViolations(report)).toEqual([]);
    expect(report.counts).toMatchObject({ accepted: 2, posted: 1, reversed: 1, lost: 0, multiple: 0 });
  }, 180_000);
});
