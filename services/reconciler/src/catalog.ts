import { type EventType, EventTypes, type StreamName, StreamNames, Streams } from "@jetmesh/contracts";
import type { StageSettings } from "@jetmesh/stage";
import { type ConsumerSpec, inputConsumerSpec } from "@jetmesh/stage/internal";

/**
 * What the reconciler holds the mesh to: the steps of a transfer's saga and the durable
 * consumers the stages declare. Data only.
 */

/** The steps of a transfer, each named by what it waits for. */
export const Steps = {
  /** transfers.requested → transfers.validated | transfers.rejected (validator) */
  Validate: "validate",
  /** transfers.validated → transfers.scored (risk) */
  Score: "score",
  /** transfers.scored → ledger.posted | ledger.declined (ledger) */
  Decide: "decide",
  /** ledger.posted to a bank account → payouts.completed | payouts.failed (payout) */
  Payout: "payout",
  /** payouts.failed → ledger.reversed (ledger) */
  Reverse: "reverse",
} as const;
export type Step = (typeof Steps)[keyof typeof Steps];

/** Where the event that ends each step is stored, and which stage writes it. */
export const StepEnds: Readonly<Record<Step, { readonly stream: StreamName; readonly stage: string }>> = {
  validate: { stream: StreamNames.Validation, stage: "validator" },
  score: { stream: StreamNames.Risk, stage: "risk" },
  decide: { stream: StreamNames.Ledger, stage: "ledger" },
  payout: { stream: StreamNames.Payouts, stage: "payout" },
  reverse: { stream: StreamNames.Ledger, stage: "ledger" },
};

/** A durable consumer a stage declares (its manifest `inputs`; catalog.test.ts compares them). */
export interface DeclaredConsumer {
  readonly stream: StreamName;
  readonly durable: string;
  readonly types: readonly EventType[];
}

export const DeclaredConsumers: readonly DeclaredConsumer[] = [
  { stream: "INGRESS", durable: "validator", types: [EventTypes.TransferRequested] },
  { stream: "VALIDATION", durable: "risk", types: [EventTypes.TransferValidated] },
  { stream: "RISK", durable: "ledger", types: [EventTypes.TransferScored] },
  { stream: "PAYOUTS", durable: "ledger", types: [EventTypes.PayoutFailed] },
  { stream: "LEDGER", durable: "payout", types: [EventTypes.LedgerPosted] },
  ...(["INGRESS", "VALIDATION", "RISK", "LEDGER", "PAYOUTS"] as const).map((stream) => ({
    stream,
    durable: "gateway-status",
    types: Streams[stream].eventTypes,
  })),
];

/**
 * The consumer spec the runtime creates for a declared consumer (run-stage.ts): a filter
 * when it takes one type of a stream holding several, the ack wait and max ack pending of
 * the mesh's shared JETMESH_* settings.
 */
export function specOf(
  c: DeclaredConsumer,
  s: Pick<StageSettings, "ackWaitMs" | "maxAckPending">,
): ConsumerSpec {
  return inputConsumerSpec(c.durable, c, s);
}
