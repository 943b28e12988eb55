import { serveStage, untilAnswered } from "@jetmesh/stage";
import { jetstream } from "@nats-io/jetstream";
import pkg from "../package.json" with { type: "json" };
import { createBankClient } from "./bank-client.ts";
import { loadConfig } from "./config.ts";
import { payoutStage } from "./handler.ts";
import { openPayoutRecords } from "./records.ts";

const config = loadConfig();
await serveStage({
  definition: payoutStage,
  config,
  version: pkg.version,
  deps: async ({ nc, logger }) => ({
    bank: createBankClient(config.bank),
    records: await untilAnswered(logger, `bucket ${config.recordsBucket}`, () =>
      openPayoutRecords(jetstream(nc), { bucket: config.recordsBucket, replicas: config.stage.replicas }),
    ),
    bankRetentionMs: config.bank.retentionMs,
  }),
});
