import {
  EventTypes,
  LedgerProjection,
  AccountPatterns,
  type RiskDecision,
  type TransferScored,
  type TransferValidated,
  transferCoreOf,
} from "@jetmesh/contracts";
import { defineStage, emit, PermanentError } from "@jetmesh/stage";
import type { Velocity, VelocityStore } from "./velocity.ts";

/** Scores at and above which a transfer goes to review or is denied. */
export interface Thresholds {
  readonly reviewScore: number;
  readonly denyScore: number;
}

export interface RiskDeps {
  readonly velocity: VelocityStore;
  readonly thresholds: Thresholds;
}

/** An assessment: the part of transfers.scored the stage adds to the transfer. */
export type Assessment = Pick<TransferScored, "score" | "decision" | "factors">;

/** Amount bands in minor units (currency-blind, like the validator's limit): upper bound → points. */
export const AmountBands = [
  { upTo: 50_000, points: 0, factor: undefined },
  { upTo: 500_000, points: 15, factor: "amount:medium" },
  { upTo: 2_000_000, points: 30, factor: "amount:high" },
  { upTo: 5_000_000, points: 45, factor: "amount:very-high" },
  { upTo: Number.POSITIVE_INFINITY, points: 60, factor: "amount:extreme" },
] as const;

/** Transfers from one account in one window, this one included: upper bound → points. */
export const VelocityCountBands = [
  { upTo: 3, points: 0, factor: undefined },
  { upTo: 6, points: 15, factor: "velocity:elevated" },
  { upTo: 10, points: 30, factor: "velocity:high" },
  { upTo: Number.POSITIVE_INFINITY, points: 45, factor: "velocity:burst" },
] as const;

/** Sum moved out of one account in one window, this one included: upper bound → points. */
export const VelocitySumBands = [
  { upTo: 5_000_000, points: 0, factor: undefined },
  { upTo: 10_000_000, points: 20, factor: "velocity-sum:high" },
  { upTo: Number.POSITIVE_INFINITY, points: 30, factor: "velocity-sum:extreme" },
] as const;

/** Money leaving the system to a bank cannot be taken back by a reversal. */
export const BankDestinationPoints = 10;

interface Band {
  readonly upTo: number;
  readonly points: number;
  readonly factor: string | undefined;
}
function band(bands: readonly Band[], value: number): Band {
  return bands.find((b) => value <= b.upTo) ?? (bands.at(-1) as Band);
}

/** The decision a score leads to. */
export function decide(score: number, t: Thresholds): RiskDecision {
  if (score >= t.denyScore) return "deny";
  if (score >= t.reviewScore) return "review";
  return "allow";
}

/**
 * Scores a transfer from its amount, its destination and its source account's
 * velocity (`undefined` for money coming in from `external`, which is scored 0:
 * it moves no customer's money out). Pure and deterministic: the same inputs always
 * give the same assessment, factors in a fixed order.
 */
export function assess(
  t: TransferValidated,
  velocity: Velocity | undefined,
  thresholds: Thresholds,
): Assessment {
  if (t.from === LedgerProjection.externalAccount) {
    return { score: 0, decision: decide(0, thresholds), factors: ["source:external"] };
  }
  const parts: Band[] = [band(AmountBands, t.amountMinor)];
  if (velocity)
    parts.push(band(VelocityCountBands, velocity.count), band(VelocitySumBands, velocity.sumMinor));
  if (AccountPatterns.bank.test(t.to))
    parts.push({ upTo: 0, points: BankDestinationPoints, factor: "destination:bank" });
  const score = Math.min(
    100,
    parts.reduce((sum, p) => sum + p.points, 0),
  );
  const factors = parts.flatMap((p) => (p.factor === undefined ? [] : [p.factor]));
  return { score, decision: decide(score, thresholds), factors };
}

/**
 * risk: VALIDATION transfers.validated → RISK transfers.scored. The velocity bump is
 * the effect: keyed by the input eventId and windowed by the input's occurredAt, so
 * the runtime may apply it again after a crash and get the same score back.
 */
export const riskStage = defineStage<typeof EventTypes.TransferValidated, RiskDeps>({
  name: "risk",
  inputs: [{ stream: "VALIDATION", types: [EventTypes.TransferValidated] }],
  emits: [EventTypes.TransferScored],
  handle: (event, ctx) => {
    const transfer = transferCoreOf(event.data);
    const { thresholds, velocity } = ctx.deps;
    if (transfer.from === LedgerProjection.externalAccount) {
      return [emit(EventTypes.TransferScored, { ...transfer, ...assess(transfer, undefined, thresholds) })];
    }
    const atMs = Date.parse(event.occurredAt);
    if (Number.isNaN(atMs)) throw new PermanentError(`occurredAt ${event.occurredAt} is not a timestamp`);
    return {
      effect: async () => {
        const v = await velocity.bump({
          account: transfer.from,
          eventId: event.eventId,
          amountMinor: transfer.amountMinor,
          atMs,
        });
        return [emit(EventTypes.TransferScored, { ...transfer, ...assess(transfer, v, thresholds) })];
      },
    };
  },
});
