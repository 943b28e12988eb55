// The ledger's decisions as pure functions of the fold of LEDGER (no servers: decide.ts
// reads nothing but the view it is given).
import { type AnyEnvelope, EventTypes, type PayoutFailed, type TransferScored } from "@jetmesh/contracts";
import { outputEnvelopes } from "@jetmesh/stage/internal";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Decision, decidePosting, decideReversal, type LedgerView } from "./decide.ts";
import { applyLedgerEvent, emptyFold, type FoldState, totals } from "./fold.ts";
import { type Core, failedInput, posted, reversed, scoredInput } from "./test-support.ts";

const DECLARED = new Set<string>([
  EventTypes.LedgerPosted,
  EventTypes.LedgerDeclined,
  EventTypes.LedgerReversed,
]);

/** The view a decision reads, over a fold (what the writer gives it with nothing in flight). */
const viewOf = (f: FoldState): LedgerView => ({
  balance: (account, currency) => f.balances.get(account)?.get(currency) ?? 0n,
  outcome: (transferId) => f.outcomes.get(transferId),
});

/** Appends a decision to the fold, as the writer's append and the follower's fold do. */
function commit(f: FoldState, input: AnyEnvelope, d: Decision): AnyEnvelope {
  if (d.kind !== "append") throw new Error(`expected an append, got ${d.kind}`);
  const [env] = outputEnvelopes("ledger", input, [d.emission], { declared: DECLARED, derived: true });
  expect(applyLedgerEvent(f, f.seq + 1, env as AnyEnvelope)).toBe("applied");
  return env as AnyEnvelope;
}

const t = (transferId: string, from: string, to: string, amountMinor: number, currency = "EUR"): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency,
});
const scored = (core: Core, decision: TransferScored["decision"] = "allow"): TransferScored =>
  scoredInput(core, decision).data;
const failed = (core: Core, reason = "account closed"): PayoutFailed =>
  failedInput(core, undefined, reason).data;

/** A fold in which `account` holds `amount` EUR, funded from external. */
function funded(account: string, amount: number): FoldState {
  const f = emptyFold();
  applyLedgerEvent(f, 1, posted(t(`fund-${account}`, "external", account, amount)));
  return f;
}

describe("ledger decisions: postings", () => {
  it("ledger - a transfer within the balance is posted with the risk decision (allow or review)", () => {
    const f = funded("acc-a", 1000);
    for (const decision of ["allow", "review"] as const) {
      const d = decidePosting(viewOf(f), scored(t(`t-${decision}`, "acc-a", "bank:x", 400), decision));
      expect(d).toEqual({
        kind: "append",
        emission: {
          type: "ledger.posted",
          data: {
            transferId: `t-${decision}`,
            from: "acc-a",
            to: "bank:x",
            amountMinor: 400,
            currency: "EUR",
            decision,
          },
        },
      });
    }
  });

  it("ledger - a denied transfer is declined risk_denied, with or without the funds", () => {
    const f = funded("acc-a", 1000);
    for (const from of ["acc-a", "acc-poor", "external"]) {
      const d = decidePosting(viewOf(f), scored(t("t-deny", from, "acc-b", 10), "deny"));
      expect(d).toMatchObject({
        kind: "append",
        emission: { type: "ledger.declined", data: { reason: "risk_denied" } },
      });
    }
  });

  it("ledger - a balance may reach exactly zero but not below; another currency is another balance", () => {
    const f = funded("acc-a", 300);
    const exact = decidePosting(viewOf(f), scored(t("t-exact", "acc-a", "acc-b", 300)));
    expect(exact).toMatchObject({ kind: "append", emission: { type: "ledger.posted" } });
    const over = decidePosting(viewOf(f), scored(t("t-over", "acc-a", "acc-b", 301)));
    expect(over).toMatchObject({
      kind: "append",
      emission: { type: "ledger.declined", data: { reason: "insufficient_funds", amountMinor: 301 } },
    });
    const usd = decidePosting(viewOf(f), scored(t("t-usd", "acc-a", "acc-b", 1, "USD")));
    expect(usd).toMatchObject({
      emission: { type: "ledger.declined", data: { reason: "insufficient_funds" } },
    });
    const unknown = decidePosting(viewOf(f), scored(t("t-nobody", "acc-nobody", "acc-b", 1)));
    expect(unknown).toMatchObject({
      emission: { type: "ledger.declined", data: { reason: "insufficient_funds" } },
    });
  });

  it("ledger - external is the one account that may go below zero", () => {
    const f = emptyFold();
    const d = decidePosting(viewOf(f), scored(t("t-ext", "external", "acc-a", Number.MAX_SAFE_INTEGER)));
    expect(d).toMatchObject({ kind: "append", emission: { type: "ledger.posted" } });
    commit(f, scoredInput(t("t-ext", "external", "acc-a", Number.MAX_SAFE_INTEGER)) as AnyEnvelope, d);
    expect(f.balances.get("external")?.get("EUR")).toBe(-BigInt(Number.MAX_SAFE_INTEGER));
  });

  it("ledger - malformed transfers are refused, not declined: amounts, currencies, account shapes, from === to", () => {
    const f = funded("acc-a", 1000);
    const cases: Array<[Core, RegExp]> = [
      [t("m1", "acc-a", "acc-b", 0), /amount 0 is not a positive integer/],
      [t("m2", "acc-a", "acc-b", -5), /amount -5/],
      [t("m3", "acc-a", "acc-b", 1.5), /amount 1.5/],
      [t("m4", "external", "acc-b", Number.MAX_SAFE_INTEGER + 2), /not a positive integer/],
      [t("m5", "acc-a", "acc-b", 1, "eur"), /currency "eur" is not a code/],
      [t("m6", "bank:x", "acc-b", 1), /source account "bank:x" is neither external nor a customer/],
      [t("m7", "alice", "acc-b", 1), /source account "alice"/],
      [t("m8", "acc-a", "external", 1), /destination account "external" is neither/],
      [t("m9", "acc-a", "ACC-B", 1), /destination account "ACC-B"/],
      [t("m10", "acc-a", "acc-a", 1), /source and destination are the same account/],
    ];
    for (const [core, why] of cases) {
      for (const decision of ["allow", "deny"] as const) {
        const d = decidePosting(viewOf(f), scored(core, decision));
        expect(d.kind, `${core.transferId} ${decision}`).toBe("refuse");
        expect((d as { reason: string }).reason).toMatch(why);
        expect((d as { reason: string }).reason).toContain(core.transferId);
      }
    }
  });

  it("ledger - a transfer with an outcome in the view is decided, whatever the input says now", () => {
    const f = funded("acc-a", 100);
    const poor = t("t-1", "acc-a", "acc-b", 500);
    const input = scoredInput(poor) as AnyEnvelope;
    commit(f, input, decidePosting(viewOf(f), scored(poor)));
    expect(f.outcomes.get("t-1")).toMatchObject({ status: "declined", detail: "insufficient_funds" });
    // funds arrive: the decline stands, and so does a changed (forged) copy of the input
    applyLedgerEvent(f, f.seq + 1, posted(t("fund-2", "external", "acc-a", 10_000)));
    for (const again of [scored(poor), scored({ ...poor, amountMinor: 1, to: "acc-c" }, "review")]) {
      const d = decidePosting(viewOf(f), again);
      expect(d).toEqual({ kind: "decided", outcome: f.outcomes.get("t-1") });
    }
    // even a malformed copy of a decided transfer is answered with its outcome
    expect(decidePosting(viewOf(f), scored({ ...poor, amountMinor: 0 })).kind).toBe("decided");
  });
});

describe("ledger decisions: reversals", () => {
  const pay = t("t-pay", "acc-a", "bank:x", 400);
  function withPosting(): FoldState {
    const f = funded("acc-a", 1000);
    applyLedgerEvent(f, f.seq + 1, posted(pay));
    return f;
  }

  it("ledger - a failed payout reverses the stored posting's accounts and amount, once", () => {
    const f = withPosting();
    const input = failedInput(pay, "pf-1", "bank refused") as AnyEnvelope;
    const d = decideReversal(viewOf(f), failed(pay, "bank refused"));
    expect(d).toEqual({
      kind: "append",
      emission: { type: "ledger.reversed", data: { ...pay, reason: "bank refused" } },
    });
    const env = commit(f, input, d);
    expect(env.causationId).toBe("pf-1");
    expect(f.balances.get("acc-a")?.get("EUR")).toBe(1000n);
    expect(f.balances.get("bank:x")?.get("EUR")).toBe(0n);
    // the same refusal again, or another refusal of the transfer: decided, nothing to append
    for (const again of [failed(pay, "bank refused"), failed(pay, "another reason")]) {
      const d2 = decideReversal(viewOf(f), again);
      expect(d2.kind).toBe("decided");
      expect((d2 as { outcome: { reversal?: unknown } }).outcome.reversal).toEqual({
        reason: "bank refused",
        cause: "pf-1",
      });
    }
  });

  it("ledger - a refusal of a posting the view does not hold is unknown", () => {
    expect(decideReversal(viewOf(emptyFold()), failed(pay))).toEqual({ kind: "unknown" });
  });

  it("ledger - a refusal of a declined transfer is refused", () => {
    const f = emptyFold();
    const poor = t("t-poor", "acc-a", "bank:x", 5);
    commit(f, scoredInput(poor) as AnyEnvelope, decidePosting(viewOf(f), scored(poor)));
    const d = decideReversal(viewOf(f), failed(poor));
    expect(d.kind).toBe("refuse");
    expect((d as { reason: string }).reason).toMatch(
      /t-poor was declined \(insufficient_funds\); nothing to reverse/,
    );
  });

  it("ledger - a refusal naming other accounts or another amount than the posting is refused", () => {
    const f = withPosting();
    for (const other of [
      { ...pay, from: "acc-z" },
      { ...pay, to: "bank:y" },
      { ...pay, amountMinor: 401 },
    ]) {
      const d = decideReversal(viewOf(f), failed(other));
      expect(d.kind).toBe("refuse");
      expect((d as { reason: string }).reason).toMatch(/the posting moved 400 EUR acc-a→bank:x/);
    }
    expect(f.outcomes.get("t-pay")?.reversal).toBeUndefined();
  });

  it("ledger - a refusal of a posting to a customer account is refused: the customer may have spent it", () => {
    // found by the property below: external → acc-c, acc-c spends 1, then a "failed payout" of
    // the first posting took acc-c to -1. Payouts go to bank accounts only, which never spend.
    const f = emptyFold();
    const fundC = t("t-fund-c", "external", "acc-c", 10);
    for (const c of [fundC, t("t-spend", "acc-c", "acc-a", 1)]) {
      commit(f, scoredInput(c) as AnyEnvelope, decidePosting(viewOf(f), scored(c)));
    }
    const d = decideReversal(viewOf(f), failed(fundC));
    expect(d.kind).toBe("refuse");
    expect((d as { reason: string }).reason).toMatch(
      /whose posting paid acc-c: only a posting to a bank account is paid out/,
    );
    expect(f.balances.get("acc-c")?.get("EUR")).toBe(9n);
  });

  it("ledger - a reversal already in the view is decided (the fold of a reversal event)", () => {
    const f = withPosting();
    applyLedgerEvent(f, f.seq + 1, reversed(pay, "refused", "pf-earlier"));
    expect(decideReversal(viewOf(f), failed(pay))).toMatchObject({
      kind: "decided",
      outcome: { transferId: "t-pay", reversal: { reason: "refused", cause: "pf-earlier" } },
    });
  });
});

/** One input of a random workload. */
type Step =
  | {
      kind: "score";
      from: string;
      to: string;
      amount: number;
      currency: string;
      decision: TransferScored["decision"];
    }
  | { kind: "refuse"; pick: number; tamper: boolean }
  | { kind: "again"; pick: number };

const FROM = ["external", "acc-a", "acc-b", "acc-c"];
const TO = ["acc-a", "acc-b", "acc-c", "bank:x"];
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("score" as const),
      from: fc.constantFrom(...FROM),
      to: fc.constantFrom(...TO),
      amount: fc.oneof(
        fc.integer({ min: -5, max: 600 }),
        fc.constant(Number.MAX_SAFE_INTEGER),
        fc.constant(Number.MAX_SAFE_INTEGER + 1),
      ),
      currency: fc.constantFrom("EUR", "USD"),
      decision: fc.constantFrom("allow" as const, "review" as const, "deny" as const),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("refuse" as const), pick: fc.nat(), tamper: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("again" as const), pick: fc.nat() }) },
);

describe("ledger decisions (property)", () => {
  it("ledger - any sequence of scored transfers and refusals keeps every prefix solvent and conserved, reverses at most once, and a second decision of an input is 'decided'", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60 }), (steps) => {
        const fold = emptyFold();
        const inputs: AnyEnvelope[] = [];
        const appended = new Map<string, string[]>();
        const decide = (input: AnyEnvelope): Decision =>
          input.type === EventTypes.TransferScored
            ? decidePosting(viewOf(fold), input.data)
            : decideReversal(viewOf(fold), input.data as PayoutFailed);
        for (const [i, s] of steps.entries()) {
          let input: AnyEnvelope | undefined;
          if (s.kind === "score") {
            input = scoredInput(
              t(`t-${i}`, s.from, s.to, s.amount, s.currency),
              s.decision,
              `sc-${i}`,
            ) as AnyEnvelope;
          } else if (inputs.length) {
            const earlier = inputs[s.pick % inputs.length] as AnyEnvelope;
            const core = earlier.data as Core;
            input =
              s.kind === "again"
                ? earlier
                : (failedInput(
                    s.tamper ? { ...core, amountMinor: core.amountMinor + 1 } : core,
                    `pf-${i}`,
                  ) as AnyEnvelope);
          }
          if (!input) continue;
          const d = decide(input);
          if (d.kind === "append") {
            const env = commit(fold, input, d);
            const id = (env.data as Core).transferId;
            appended.set(id, [...(appended.get(id) ?? []), env.type]);
            // the same input decided again, on the log that now holds its decision
            expect(decide(input).kind).toBe("decided");
          }
          if (s.kind === "score") inputs.push(input);
          // every prefix: nobody but external below zero, and each currency sums to 0
          for (const [account, byCurrency] of fold.balances) {
            if (account === "external") continue;
            for (const v of byCurrency.values()) expect(v).toBeGreaterThanOrEqual(0n);
          }
          for (const sum of totals(fold.balances).values()) expect(sum).toBe(0n);
        }
        // one outcome per transfer, a reversal only of a posting and at most once
        for (const [id, types] of appended) {
          expect(["ledger.posted", "ledger.declined"]).toContain(types[0]);
          expect(
            types.slice(1).every((x) => x === "ledger.reversed"),
            id,
          ).toBe(true);
          expect(types.length).toBeLessThanOrEqual(types[0] === "ledger.posted" ? 2 : 1);
        }
      }),
      {
        numRuns: 1000,
        // the counterexample that found reversals of customer postings overdrawing them
        examples: [
          [
            [
              {
                kind: "score",
                from: "external",
                to: "acc-c",
                amount: Number.MAX_SAFE_INTEGER,
                currency: "USD",
                decision: "allow",
              },
              { kind: "score", from: "acc-c", to: "acc-a", amount: 1, currency: "USD", decision: "allow" },
              { kind: "refuse", pick: 0, tamper: false },
            ],
          ],
        ],
      },
    );
  });
});
