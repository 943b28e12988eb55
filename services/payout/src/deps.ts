import { type StageClients, untilAnswered } from "@jetmesh/stage";
import { jetstream } from "@nats-io/jetstream";
import { createBankClient } from "./bank-client.ts";
import type { PayoutConfig } from "./config.ts";
import type { PayoutDeps } from "./handler.ts";
import { openPayoutRecords } from "./records.ts";

/** The payout stage's dependencies: the bank client and its records bucket (waited for until the deploy step made it). */
export function payoutDeps(config: PayoutConfig): (c: StageClients) => Promise<PayoutDeps> {
  return async ({ nc, logger }) => ({
    bank: createBankClient(config.bank),
    records: await untilAnswered(logger, `bucket ${config.recordsBucket}`, () =>
      openPayoutRecords(jetstream(nc), { bucket: config.recordsBucket, replicas: config.stage.replicas }),
    ),
    bankRetentionMs: config.bank.retentionMs,
  });
}
