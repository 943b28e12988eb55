import type { Prng } from "@jetmesh/testkit";

/** What one transfer was meant to exercise. */
export type TransferKind =
  | "funding"
  | "transfer"
  | "payout"
  | "refused-payout"
  | "rule-rejected"
  | "large"
  | "invalid";

/** How the copies of one request were sent. */
export type CopyPattern = "single" | "sequential" | "concurrent" | "pair-then-one";

/** A transfer request body. */
export interface TransferBody {
  readonly from: string;
  readonly to: string;
  readonly amountMinor: number;
  readonly currency: string;
}

/** The mix of the traffic: each share 0..1 of the transfers (the rest are plain transfers). */
export interface TrafficMix {
  /** Structurally invalid requests (400 expected). */
  readonly invalid: number;
  /** Mints from `external` to a customer account, in the middle of the traffic. */
  readonly funding: number;
  /** Valid requests the validator rejects (unknown currency, from = to, amount 0). */
  readonly ruleRejected: number;
  /** Payouts to a `bank:` account the bank pays. */
  readonly payout: number;
  /** Payouts to an account the bank refuses (the ledger reverses them). */
  readonly refusedPayout: number;
  /** Amounts that risk denies. */
  readonly large: number;
  /** Requests sent twice with the same key and body. */
  readonly duplicate: number;
  /** Of those, the share sent concurrently (else one after the other). */
  readonly concurrent: number;
  /** Every request sent three times, in a drawn pattern (the duplicate storm). */
  readonly storm: boolean;
  /** Share of transfers in USD (the rest EUR). */
  readonly usd: number;
  /** Amount of a plain transfer, minor units, both ends included. */
  readonly amountMinor: readonly [number, number];
}

/** Plain transfers only, each sent once: what a throughput measure wants. */
export const PLAIN_MIX: TrafficMix = {
  invalid: 0,
  funding: 0,
  ruleRejected: 0,
  payout: 0,
  refusedPayout: 0,
  large: 0,
  duplicate: 0,
  concurrent: 0,
  storm: false,
  usd: 0,
  amountMinor: [100, 50_000],
};

/** The demo's mix (`pnpm mesh`): every path of the pipeline, client retries, two currencies. */
export const DEMO_MIX: TrafficMix = {
  ...PLAIN_MIX,
  invalid: 0.03,
  ruleRejected: 0.02,
  payout: 0.04,
  refusedPayout: 0.02,
  large: 0.01,
  duplicate: 0.1,
  concurrent: 0.5,
  usd: 0.15,
};

/** A chaos run's mix: every path, fundings along the way (transfers never starve), a few copies. */
export const STEADY_MIX: TrafficMix = {
  ...PLAIN_MIX,
  invalid: 0.01,
  funding: 0.07,
  ruleRejected: 0.02,
  payout: 0.05,
  refusedPayout: 0.03,
  large: 0.01,
  duplicate: 0.05,
  concurrent: 0.5,
};

/** One transfer as planned: every random choice already drawn. */
export interface Planned {
  readonly key: string;
  readonly kind: TransferKind;
  /** No Idempotency-Key header (one of the invalid requests). */
  readonly keyless?: boolean;
  readonly body: unknown;
  readonly pattern: CopyPattern;
  readonly copies: number;
}

/** What a plan draws from besides the PRNG. */
export interface PlanContext {
  readonly runId: string;
  readonly mix: TrafficMix;
  readonly accounts: readonly string[];
  readonly banks: readonly string[];
  readonly refusedBanks: readonly string[];
  /** The first `accounts.length` transfers fund each account once (EUR), before any other. */
  readonly fundFirst: boolean;
  readonly fundFirstMinor: number;
}

// Bodies the gateway must refuse with 400; the last has no Idempotency-Key.
const INVALID: readonly { readonly body: unknown; readonly keyless?: boolean }[] = [
  { body: { from: "acc-1", to: "acc-2", amountMinor: "12.50", currency: "EUR" } },
  { body: { from: "acc-1", to: "acc-2", currency: "EUR" } },
  { body: { from: "acc-1", to: "acc-2", amountMinor: 100, currency: "EUR", note: "extra field" } },
  { body: { from: 7, to: "", amountMinor: 1.5, currency: "EURO" } },
  { body: { from: "acc-1", to: "acc-2", amountMinor: 100, currency: "EUR" }, keyless: true },
];

/**
 * Every random draw of transfer `i`, in a fixed order, so a seed replays the same requests:
 * how it is copied, then one draw that picks the kind (consecutive bands of [0, 1) in the
 * mix's order), then accounts, amount, currency, and what the kind needs.
 */
export function planTransfer(i: number, r: Prng, c: PlanContext): Planned {
  const key = `${c.runId}-${i}`;
  const m = c.mix;
  let pattern: CopyPattern = "single";
  let copies = 1;
  if (m.storm) {
    copies = 3;
    pattern = r.pick<CopyPattern>(["sequential", "concurrent", "pair-then-one"]);
  } else if (r.chance(m.duplicate)) {
    copies = 2;
    pattern = r.chance(m.concurrent) ? "concurrent" : "sequential";
  }
  const plan = { key, pattern, copies };
  if (c.fundFirst && i < c.accounts.length) {
    const to = c.accounts[i] as string;
    return {
      ...plan,
      kind: "funding",
      body: { from: "external", to, amountMinor: c.fundFirstMinor, currency: "EUR" },
    };
  }
  const x = r.next();
  const from = r.pick(c.accounts);
  let to = r.pick(c.accounts.filter((a) => a !== from));
  let amountMinor = r.int(m.amountMinor[0], m.amountMinor[1]);
  let currency = m.usd > 0 && r.chance(m.usd) ? "USD" : "EUR";
  const band = bandOf(x, m);
  if (band === "invalid") {
    const bad = r.pick(INVALID);
    return { ...plan, kind: "invalid", body: bad.body, ...(bad.keyless ? { keyless: true } : {}) };
  }
  if (band === "funding")
    return {
      ...plan,
      kind: "funding",
      body: { from: "external", to: from, amountMinor: r.int(10_000, 500_000), currency },
    };
  let kind: TransferKind = "transfer";
  if (band === "rule-rejected") {
    kind = band;
    const how = r.int(0, 2);
    if (how === 0) currency = "XXX";
    else if (how === 1) to = from;
    else amountMinor = 0;
  } else if (band === "payout" || (band === "refused-payout" && c.refusedBanks.length > 0)) {
    kind = band;
    to = r.pick(band === "payout" ? c.banks : c.refusedBanks);
    amountMinor = r.int(100, 20_000);
  } else if (band === "large") {
    kind = band;
    amountMinor = 6_000_000;
  }
  const body: TransferBody = { from, to, amountMinor, currency };
  return { ...plan, kind, body };
}

/** The kind one draw in [0, 1) picks: consecutive bands, one per share of the mix, in this order. */
function bandOf(x: number, m: TrafficMix): TransferKind {
  const bands: readonly [TransferKind, number][] = [
    ["invalid", m.invalid],
    ["funding", m.funding],
    ["rule-rejected", m.ruleRejected],
    ["payout", m.payout],
    ["refused-payout", m.refusedPayout],
    ["large", m.large],
  ];
  let edge = 0;
  for (const [kind, share] of bands) {
    edge += share;
    if (x < edge) return kind;
  }
  return "transfer";
}
