/**
 * `rebuild` (`node dist/rebuild.mjs`): folds LEDGER from its first message with the contracts
 * codec and compares the result with the live Redis projection (invariant I4). Differences are
 * printed and make the command exit 1; a failure to run exits 2.
 *
 * This file is the command and runs it when loaded: import the functions from
 * ./projection-check.ts (`@jetmesh/ledger/projection-check`), never this file. A module that
 * asks `import.meta.url === process.argv[1]` whether it is the entry is told yes inside any
 * bundle that includes it (a bundle's modules share its URL).
 */
import { namesFor, StreamNames } from "@jetmesh/contracts";
import { connectNats, createRedis } from "@jetmesh/stage";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { loadConfig } from "./config.ts";
import { formatDifference, rebuild } from "./projection-check.ts";
import { createLedgerStore } from "./store.ts";

async function main(): Promise<number> {
  const config = loadConfig();
  const nc = await connectNats({ url: config.natsUrl, name: "ledger-rebuild", auth: config.natsAuth });
  // LEDGER and the projection's keys as named in the ledger's namespace (JETMESH_NAMESPACE).
  const names = namesFor(config.stage.namespace);
  const redis = createRedis({
    url: config.redisUrl,
    name: "ledger-rebuild",
    auth: config.redisAuth,
    keyPrefix: names.redisPrefix,
    ...(config.redisSentinel ? { sentinel: config.redisSentinel } : {}),
  });
  try {
    const report = await rebuild({
      stream: names.stream(StreamNames.Ledger),
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      store: createLedgerStore(redis, { outcomeTtlMs: config.ledger.outcomeTtlMs }),
      settleMs: config.ledger.rebuildSettleMs,
    });
    const { state, skipped } = report.fold;
    for (const s of skipped) console.log(`skipped seq ${s.seq}: ${s.reason}`);
    for (const d of report.differences) console.log(formatDifference(d));
    console.log(
      `ledger rebuild: folded LEDGER to seq ${state.seq} (${state.outcomes.size} transfers, ${state.balances.size} accounts); ` +
        `projection applied-seq ${report.view.appliedSeq}; ${report.differences.length} difference(s)`,
    );
    return report.differences.length === 0 ? 0 : 1;
  } finally {
    redis.disconnect();
    await nc.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`ledger rebuild failed: ${(err as Error).message}`);
    process.exit(2);
  },
);
