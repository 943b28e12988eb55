import { namesFor } from "@jetmesh/contracts";
import { type StageClients, untilAnswered } from "@jetmesh/stage";
import { jetstream } from "@nats-io/jetstream";
import { createBankClient } from "./bank-client.ts";
import type { PayoutConfig } from "./config.ts";
import type { PayoutDeps } from "./handler.ts";
import { openPayoutRecords } from "./records.ts";

/** The payout stage's dependencies: the bank client and its records bucket (waited for until the deploy step made it). */
export function payoutDeps(config: PayoutConfig): (c: StageClients) => Promise<PayoutDeps> {
  // The bucket as named in the stage's namespace (JETMESH_NAMESPACE; its own name in production).
  const bucket = namesFor(config.stage.namespace).bucket(config.recordsBucket);
  return async ({ nc, logger }) => ({
    bank: createBankClient(config.bank),
    records: await untilAnswered(logger, `bucket ${bucket}`, () =>
      openPayoutRecords(jetstream(nc), { bucket, replicas: config.stage.replicas }),
    ),
    bankRetentionMs: config.bank.retentionMs,
  });
}
