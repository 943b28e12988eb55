import {
  AccountPatterns,
  EventTypes,
  LedgerProjection,
  type RejectionReason,
  type TransferRequested,
  transferCoreOf,
} from "@jetmesh/contracts";
import { defineStage, emit } from "@jetmesh/stage";

/** The business rules of a transfer; the contract only checks its shape. */
export interface ValidationRules {
  /** Largest amount accepted, in minor units. */
  readonly maxAmountMinor: number;
  /** ISO 4217 codes accepted. */
  readonly currencies: ReadonlySet<string>;
}

export interface ValidatorDeps {
  readonly rules: ValidationRules;
}

/**
 * Every rule `t` breaks, in field order; empty when the transfer is valid. Fields are
 * JSON pointers into the transfer, like the gateway's 400 answers.
 */
export function validateTransfer(t: TransferRequested, rules: ValidationRules): RejectionReason[] {
  const reasons: RejectionReason[] = [];
  if (!Number.isSafeInteger(t.amountMinor) || t.amountMinor <= 0) {
    reasons.push({ field: "/amountMinor", rule: "must be a positive integer" });
  } else if (t.amountMinor > rules.maxAmountMinor) {
    reasons.push({ field: "/amountMinor", rule: `must be at most ${rules.maxAmountMinor}` });
  }
  if (!rules.currencies.has(t.currency)) {
    reasons.push({ field: "/currency", rule: `must be one of ${[...rules.currencies].join(", ")}` });
  }
  if (t.from !== LedgerProjection.externalAccount && !AccountPatterns.customer.test(t.from)) {
    reasons.push({
      field: "/from",
      rule: `must be ${LedgerProjection.externalAccount} or match ${AccountPatterns.customer.source}`,
    });
  }
  if (!AccountPatterns.customer.test(t.to) && !AccountPatterns.bank.test(t.to)) {
    reasons.push({
      field: "/to",
      rule: `must match ${AccountPatterns.customer.source} or ${AccountPatterns.bank.source}`,
    });
  }
  if (t.from === t.to) reasons.push({ field: "/to", rule: "must differ from /from" });
  return reasons;
}

/**
 * validator: INGRESS transfers.requested → transfers.validated, or transfers.rejected
 * naming every broken rule. No side effects, so no effect step.
 */
export const validatorStage = defineStage<typeof EventTypes.TransferRequested, ValidatorDeps>({
  name: "validator",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated, EventTypes.TransferRejected],
  handle: (event, ctx) => {
    const transfer = transferCoreOf(event.data);
    const reasons = validateTransfer(event.data, ctx.deps.rules);
    if (reasons.length === 0) return [emit(EventTypes.TransferValidated, transfer)];
    ctx.logger.debug({ reasons }, "transfer rejected");
    return [emit(EventTypes.TransferRejected, { ...transfer, reasons })];
  },
});
