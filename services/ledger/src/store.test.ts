import type { AnyEnvelope } from "@jetmesh/contracts";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyLedgerEvent, emptyFold, type FoldState, totals } from "./fold.ts";
import { diffProjection } from "./rebuild.ts";
import { createLedgerStore, type LedgerStore, LedgerKeys, type PostInput } from "./store.ts";
import { declined, type Infra, markReady, posted, reversed, startInfra } from "./test-support.ts";

let infra: Infra;
let store: LedgerStore;

beforeAll(async () => {
  infra = await startInfra({ nats: false });
  store = createLedgerStore(infra.redis);
});
afterAll(() => infra?.close());
beforeEach(async () => {
  await infra.redis.flushall();
  await markReady(infra.redis);
});

const bal = async (account: string, currency = "EUR") =>
  BigInt((await infra.redis.hget(LedgerKeys.balance(account), currency)) ?? "0");

const transfer = (over: Partial<PostInput> = {}): PostInput => ({
  cause: "e-1",
  transferId: "t-1",
  from: "external",
  to: "acc-a",
  amountMinor: 1000,
  currency: "EUR",
  decision: "allow",
  ...over,
});

describe("ledger store (Lua)", () => {
  it("ledger - posting moves money once and a replay returns the same outcome", async () => {
    const first = await store.post(transfer());
    expect(first).toEqual({ kind: "new", status: "posted", detail: "allow", cause: "e-1" });
    const again = await store.post(transfer());
    expect(again).toEqual({ kind: "replay", status: "posted", detail: "allow", cause: "e-1" });
    expect(await bal("external")).toBe(-1000n);
    expect(await bal("acc-a")).toBe(1000n);
    expect(await infra.redis.smembers(LedgerKeys.accounts)).toEqual(
      expect.arrayContaining(["external", "acc-a"]),
    );
  });

  it("ledger - insufficient funds declines, and the decline is replayed even after funds arrive", async () => {
    const r = await store.post(
      transfer({ transferId: "t-2", cause: "e-2", from: "acc-a", to: "acc-b", amountMinor: 1 }),
    );
    expect(r).toEqual({ kind: "new", status: "declined", detail: "insufficient_funds", cause: "e-2" });
    await store.post(transfer({ transferId: "t-fund", cause: "e-f", amountMinor: 50 }));
    const again = await store.post(
      transfer({ transferId: "t-2", cause: "e-2", from: "acc-a", to: "acc-b", amountMinor: 1 }),
    );
    expect(again).toMatchObject({ kind: "replay", status: "declined", detail: "insufficient_funds" });
    expect(await bal("acc-a")).toBe(50n);
    expect(await bal("acc-b")).toBe(0n);
  });

  it("ledger - a balance may reach exactly zero but not below; external may go negative", async () => {
    await store.post(transfer({ amountMinor: 300 }));
    const exact = await store.post(
      transfer({ transferId: "t-x", cause: "e-x", from: "acc-a", to: "acc-b", amountMinor: 300 }),
    );
    expect(exact).toMatchObject({ status: "posted" });
    const over = await store.post(
      transfer({ transferId: "t-y", cause: "e-y", from: "acc-a", to: "acc-b", amountMinor: 1 }),
    );
    expect(over).toMatchObject({ status: "declined", detail: "insufficient_funds" });
    expect(await bal("acc-a")).toBe(0n);
    expect(await bal("external")).toBe(-300n);
    // another currency is another balance
    const usd = await store.post(
      transfer({ transferId: "t-u", cause: "e-u", from: "acc-b", to: "acc-a", currency: "USD" }),
    );
    expect(usd).toMatchObject({ status: "declined" });
  });

  it("ledger - a denied transfer is declined without a funds check or any move", async () => {
    const r = await store.post(transfer({ decision: "deny" }));
    expect(r).toEqual({ kind: "new", status: "declined", detail: "risk_denied", cause: "e-1" });
    expect(await bal("acc-a")).toBe(0n);
    expect(await bal("external")).toBe(0n);
  });

  it("ledger - an outcome stored for one event is returned with its cause to another event", async () => {
    await store.post(transfer({ cause: "e-1" }));
    const other = await store.post(transfer({ cause: "e-other" }));
    expect(other).toEqual({ kind: "replay", status: "posted", detail: "allow", cause: "e-1" });
    expect(await bal("acc-a")).toBe(1000n);
  });

  it("ledger - a reversal happens once per transfer and replays with the stored amounts", async () => {
    await store.post(transfer({ amountMinor: 700 }));
    await store.post(
      transfer({ transferId: "t-pay", cause: "e-pay", from: "acc-a", to: "bank:x", amountMinor: 400 }),
    );
    const input = { cause: "pf-1", transferId: "t-pay", from: "acc-a", to: "bank:x", reason: "refused" };
    const first = await store.reverse(input);
    expect(first).toEqual({
      kind: "new",
      reason: "refused",
      cause: "pf-1",
      from: "acc-a",
      to: "bank:x",
      amountMinor: 400,
      currency: "EUR",
    });
    const again = await store.reverse(input);
    expect(again).toEqual({ ...first, kind: "replay" });
    const other = await store.reverse({ ...input, cause: "pf-2", reason: "another" });
    expect(other).toMatchObject({ kind: "replay", cause: "pf-1", reason: "refused" });
    expect(await bal("acc-a")).toBe(700n);
    expect(await bal("bank:x")).toBe(0n);
  });

  it("ledger - reversal of an unknown or declined transfer moves nothing", async () => {
    expect(await store.reverse({ cause: "pf", transferId: "nope", from: "a", to: "b", reason: "r" })).toEqual(
      {
        kind: "unknown",
      },
    );
    await store.post(transfer({ decision: "deny" }));
    expect(
      await store.reverse({ cause: "pf", transferId: "t-1", from: "external", to: "acc-a", reason: "r" }),
    ).toEqual({
      kind: "not-posted",
      status: "declined",
      detail: "risk_denied",
    });
  });

  it("ledger - a reversal naming other accounts still reverses the stored posting", async () => {
    await store.post(transfer({ amountMinor: 10 }));
    const r = await store.reverse({
      cause: "pf",
      transferId: "t-1",
      from: "acc-zz",
      to: "acc-yy",
      reason: "r",
    });
    expect(r).toMatchObject({ kind: "new", from: "external", to: "acc-a", amountMinor: 10 });
    expect(await bal("acc-a")).toBe(0n);
    expect(await bal("acc-zz")).toBe(0n);
  });

  it("ledger - every script refuses while the epoch key is missing", async () => {
    await infra.redis.del(LedgerKeys.epoch);
    expect(await store.post(transfer())).toEqual({ kind: "not-ready" });
    expect(
      await store.reverse({ cause: "c", transferId: "t-1", from: "external", to: "acc-a", reason: "r" }),
    ).toEqual({
      kind: "not-ready",
    });
    expect(
      await store.apply(
        1,
        posted({ transferId: "t-1", from: "external", to: "acc-a", amountMinor: 5, currency: "EUR" }),
      ),
    ).toBe("not-ready");
    expect(await infra.redis.keys("ledger:*")).toEqual([]);
  });

  it("ledger - amounts beyond 2^31 and near the safe-integer limit stay exact", async () => {
    const big = Number.MAX_SAFE_INTEGER;
    await store.post(transfer({ amountMinor: big }));
    expect(await bal("acc-a")).toBe(BigInt(big));
    expect(await bal("external")).toBe(-BigInt(big));
  });

  it("ledger - apply of the log is idempotent by transfer and advances applied-seq", async () => {
    const core = { transferId: "t-1", from: "external", to: "acc-a", amountMinor: 50, currency: "EUR" };
    expect(await store.apply(1, posted(core))).toBe("applied");
    expect(await store.apply(2, posted(core, "allow", "other"))).toBe("duplicate");
    expect(await store.apply(3, declined(core, "insufficient_funds"))).toBe("duplicate");
    expect(await store.apply(4, reversed(core))).toBe("applied");
    expect(await store.apply(5, reversed(core))).toBe("duplicate");
    expect(await store.apply(6, reversed({ ...core, transferId: "unknown" }))).toBe("ignored");
    expect(await store.appliedSeq()).toBe(6);
    expect(await store.apply(3, posted({ ...core, transferId: "t-late" }))).toBe("applied");
    expect(await store.appliedSeq()).toBe(6);
    expect(await bal("acc-a")).toBe(50n);
  });
});

/** One step of a random workload. */
type Command =
  | {
      kind: "post";
      from: string;
      to: string;
      amount: number;
      currency: string;
      decision: "allow" | "review" | "deny";
    }
  | { kind: "reverse"; pick: number }
  | { kind: "replay"; pick: number };

const ACCOUNTS = ["external", "acc-a", "acc-b", "acc-c"];
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("post" as const),
      from: fc.constantFrom(...ACCOUNTS),
      to: fc.constantFrom(...ACCOUNTS, "bank:x"),
      amount: fc.oneof(fc.integer({ min: 0, max: 500 }), fc.constant(Number.MAX_SAFE_INTEGER)),
      currency: fc.constantFrom("EUR", "USD"),
      decision: fc.constantFrom("allow" as const, "review" as const, "deny" as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("reverse" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("replay" as const), pick: fc.nat() }) },
);

describe("ledger conservation (property)", () => {
  it("ledger - conservation and the funds rule hold under a random sequence, and the log folds to Redis", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 40 }), async (commands) => {
        await infra.redis.flushall();
        await markReady(infra.redis);
        const log: AnyEnvelope[] = [];
        const inputs: PostInput[] = [];
        for (const [i, c] of commands.entries()) {
          if (c.kind === "post" || (c.kind === "replay" && inputs.length > 0)) {
            const input: PostInput =
              c.kind === "post"
                ? {
                    cause: `sc-${i}`,
                    transferId: `t-${i}`,
                    from: c.from,
                    to: c.to,
                    amountMinor: c.amount,
                    currency: c.currency,
                    decision: c.decision,
                  }
                : (inputs[c.pick % inputs.length] as PostInput);
            const r = await store.post(input);
            if (r.kind === "not-ready") throw new Error("not ready");
            if (c.kind === "post") inputs.push(input);
            if (r.kind === "new") {
              log.push(
                r.status === "posted"
                  ? posted(input, r.detail as "allow", input.cause)
                  : declined(input, r.detail as "insufficient_funds", input.cause),
              );
              if (r.status === "posted") {
                // the funds rule: a posting leaves both sides >= 0 unless external
                for (const acc of [input.from, input.to]) {
                  if (acc === "external") continue;
                  expect(await bal(acc, input.currency)).toBeGreaterThanOrEqual(0n);
                }
              }
            }
          } else if (c.kind === "reverse" && inputs.length > 0) {
            const t = inputs[c.pick % inputs.length] as PostInput;
            const r = await store.reverse({
              cause: `pf-${i}`,
              transferId: t.transferId,
              from: t.from,
              to: t.to,
              reason: "refused",
            });
            if (r.kind === "new") log.push(reversed(t, r.reason, r.cause));
          }
          const view = await store.read();
          for (const sum of totals(view.balances).values()) expect(sum).toBe(0n);
        }
        // I4 at the script level: the events the scripts produced fold to the same state
        const fold: FoldState = emptyFold();
        for (const [i, e] of log.entries()) applyLedgerEvent(fold, i + 1, e);
        const live = await store.read();
        expect(diffProjection(fold, live)).toEqual([]);
        // and the projector's APPLY script rebuilds it from the log alone, duplicates included
        await infra.redis.flushall();
        await markReady(infra.redis);
        for (const [i, e] of [...log, ...log.slice(0, 3)].entries()) await store.apply(i + 1, e);
        expect(diffProjection(fold, await store.read())).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});
