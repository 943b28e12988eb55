// The ledger's horizon as pure functions (outcome-ttl.ts): which outcomes still decide, which
// inputs are refused, which outcomes leave the fold. The same rules against real servers:
// horizon.test.ts.
import { describe, expect, it } from "vitest";
import { decidePosting, type LedgerView } from "./decide.ts";
import { applyLedgerEvent, emptyFold } from "./fold.ts";
import {
  compactFold,
  compactionHorizonMs,
  decisionHorizonMs,
  inputForgettable,
  inputHorizonMs,
  outcomeLifeLeft,
  outcomeRemembered,
} from "./outcome-ttl.ts";
import { type Core, declined, posted, reversed, scoredInput } from "./test-support.ts";

const H = 40_000;
const T0 = Date.parse("2026-11-01T00:00:00Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();
const t = (transferId: string, from: string, to: string, amountMinor: number): Core => ({
  transferId,
  from,
  to,
  amountMinor,
  currency: "EUR",
});

/** A fold with a posting at T0, a decline at T0 + H/4, and a posting at T0 reversed at T0 + H/2. */
function history() {
  const f = emptyFold();
  const pay = t("t-pay", "acc-a", "bank:x", 30);
  applyLedgerEvent(f, 1, { ...posted(t("t-fund", "external", "acc-a", 100)), occurredAt: at(0) });
  applyLedgerEvent(f, 2, {
    ...declined(t("t-no", "acc-a", "acc-b", 500), "insufficient_funds"),
    occurredAt: at(H / 4),
  });
  applyLedgerEvent(f, 3, { ...posted(pay), occurredAt: at(0) });
  applyLedgerEvent(f, 4, { ...reversed(pay), occurredAt: at(H / 2) });
  return f;
}

describe("the ledger's horizon", () => {
  it("ledger - the horizons are H/2 for inputs, 3H/4 for decisions, H for the projection, 5H/4 for memory", () => {
    expect([inputHorizonMs(H), decisionHorizonMs(H), compactionHorizonMs(H)]).toEqual([
      20_000, 30_000, 50_000,
    ]);
    const f = history();
    expect(outcomeLifeLeft({ transferId: "t-fund" }, f, H, T0 + 10_000)).toBe(30_000);
    // a reversal renews the outcome: its time is the reversal's
    expect(outcomeLifeLeft({ transferId: "t-pay" }, f, H, T0 + 10_000)).toBe(50_000);
    // an outcome folded from a snapshot without times lives the whole TTL, and is always remembered
    expect(outcomeLifeLeft({ transferId: "t-unknown" }, f, H, T0 + 10 * H)).toBe(H);
    expect(outcomeRemembered(f, "t-unknown", H, T0 + 10 * H)).toBe(true);
  });

  it("ledger - an outcome decides until 3H/4 after its last event, not after", () => {
    const f = history();
    expect(outcomeRemembered(f, "t-fund", H, T0 + 30_000 - 1)).toBe(true);
    expect(outcomeRemembered(f, "t-fund", H, T0 + 30_000)).toBe(false);
    expect(outcomeRemembered(f, "t-pay", H, T0 + 30_000)).toBe(true);
    expect(outcomeRemembered(f, "t-pay", H, T0 + 50_000)).toBe(false);
  });

  it("ledger - an input is forgettable from H/2 after it occurred, and when its time is unreadable", () => {
    expect(inputForgettable(at(0), H, T0 + 20_000 - 1)).toBe(false);
    expect(inputForgettable(at(0), H, T0 + 20_000)).toBe(true);
    expect(inputForgettable("not a time", H, T0)).toBe(true);
  });

  it("ledger - compaction drops outcomes 5H/4 after their last event, never a balance, across chunks", async () => {
    const f = history();
    const balances = JSON.stringify(
      [...f.balances].map(([a, m]) => [a, [...m].map(([c, v]) => [c, `${v}`])]),
    );
    expect(await compactFold(f, H, T0 + 50_000 - 1)).toBe(0);
    expect(await compactFold(f, H, T0 + 50_000, 1)).toBe(1);
    expect([...f.outcomes.keys()]).toEqual(["t-no", "t-pay"]);
    expect(await compactFold(f, H, T0 + 60_000)).toBe(1);
    expect(await compactFold(f, H, T0 + 70_000)).toBe(1);
    expect(f.outcomes.size).toBe(0);
    expect(f.outcomeTimes?.size).toBe(0);
    expect(JSON.stringify([...f.balances].map(([a, m]) => [a, [...m].map(([c, v]) => [c, `${v}`])]))).toBe(
      balances,
    );
  });

  it("ledger - a posting input of an unknown transfer past the input horizon is refused; a known one is still decided", () => {
    const f = history();
    const view = (now: number): LedgerView => ({
      balance: (account, currency) => f.balances.get(account)?.get(currency) ?? 0n,
      outcome: (id) => (outcomeRemembered(f, id, H, now) ? f.outcomes.get(id) : undefined),
      forgets: (occurredAt) => inputForgettable(occurredAt, H, now),
    });
    const fresh = scoredInput(t("t-new", "external", "acc-c", 5)).data;
    expect(decidePosting(view(T0 + 1000), fresh, at(0)).kind).toBe("append");
    const old = decidePosting(view(T0 + 20_000), fresh, at(0));
    expect(old.kind).toBe("refuse");
    expect(old.kind === "refuse" && old.reason).toMatch(
      /t-new refused: its input occurred at .*past the ledger's input horizon/,
    );
    // the fund posting is still remembered at T0 + 20 s: a duplicate, answered from the log
    const fund = scoredInput(t("t-fund", "external", "acc-a", 100)).data;
    expect(decidePosting(view(T0 + 20_000), fund, at(0)).kind).toBe("decided");
    // past the decision horizon it is not, and the old input is refused rather than posted again
    expect(decidePosting(view(T0 + 30_000), fund, at(0)).kind).toBe("refuse");
    // without an input time (and for views without a horizon) nothing is refused for age
    expect(decidePosting(view(T0 + 30_000), fresh).kind).toBe("append");
  });
});
