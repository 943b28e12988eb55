import { type Static, type TObject, type TProperties, Type } from "@sinclair/typebox";

/** Event ids, transfer ids: opaque strings. */
export const Id = Type.String({ minLength: 1, maxLength: 128 });
/** `acc-…` customer accounts, `bank:…` payout destinations, or `external`. */
export const AccountId = Type.String({ minLength: 1, maxLength: 64 });
export const Currency = Type.String({ minLength: 3, maxLength: 3 });
export const AmountMinor = Type.Integer({
  minimum: -Number.MAX_SAFE_INTEGER,
  maximum: Number.MAX_SAFE_INTEGER,
});

/**
 * The fields every event of a transfer carries, whatever the stage: the runtime partitions an
 * output by `from` and the invariant checker (I5) expects `transferId` to be its correlation
 * id. A new event's schema starts from these: `Type.Object({ ...TransferCore, … })`.
 */
export const TransferCore = {
  transferId: Id,
  from: AccountId,
  to: AccountId,
  amountMinor: AmountMinor,
  currency: Currency,
};

/** The values of the {@link TransferCore} fields. */
export type TransferCoreData = Static<TObject<typeof TransferCore>>;

/**
 * The {@link TransferCore} fields of a transfer event's data and nothing else, in their
 * order: what a stage carries forward into its output (whose schema refuses fields it does
 * not name, so an input's extra fields must not travel).
 */
export function transferCoreOf(d: TransferCoreData): TransferCoreData {
  return {
    transferId: d.transferId,
    from: d.from,
    to: d.to,
    amountMinor: d.amountMinor,
    currency: d.currency,
  };
}

/**
 * The schema of a transfer event: {@link TransferCore} and `fields`, nothing else (like every
 * schema here, it refuses unknown fields, so a reader parks what it cannot know).
 */
export function transferEvent<P extends TProperties = Record<never, never>>(fields: P = {} as P) {
  return Type.Object({ ...TransferCore, ...fields }, { additionalProperties: false });
}
