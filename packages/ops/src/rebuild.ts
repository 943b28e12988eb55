import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Names, namesFor, StreamNames } from "@jetmesh/contracts";
import { type FoldResult, foldLedger, formatDifference, rebuild } from "@jetmesh/ledger/projection-check";
import type { LedgerStore } from "@jetmesh/ledger/store";
import { ConfigError, createRedis, loadRedisSentinel, type RedisSentinel } from "@jetmesh/stage";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Redis } from "ioredis";
import { ExitCodes, OpsError, oneLine } from "./errors.ts";

/**
 * `jetmesh rebuild`: invariant I4 as an operator's command. The LEDGER stream is folded from its
 * first message with the ledger's own fold (`@jetmesh/ledger/projection-check`) into a scratch state in
 * memory and compared with the live Redis projection (`@jetmesh/ledger/store`); `repair` writes
 * the fold over the projection through the ledger's own restore path.
 */

/** What the check found. Balances are decimal strings (bigint in the fold). */
export interface RebuildCheck {
  readonly stream: string;
  /** The last LEDGER sequence folded. */
  readonly foldSeq: number;
  /** The projection's `ledger:applied-seq`. */
  readonly appliedSeq: number;
  /** False when the projection has no `ledger:epoch` (wiped, or a restore under way). */
  readonly epoch: boolean;
  readonly transfers: number;
  readonly accounts: number;
  readonly skipped: readonly { readonly seq: number; readonly reason: string }[];
  readonly differences: readonly string[];
}

/**
 * Opens the projection's Redis; `REDIS_USERNAME`/`REDIS_PASSWORD_FILE`, and the primary through
 * `REDIS_SENTINELS`/`REDIS_SENTINEL_NAME`/`REDIS_SENTINEL_USERNAME`/`REDIS_SENTINEL_PASSWORD_FILE`,
 * as the services read them.
 * @throws OpsError (exit 2) for a bad Sentinel setting, (exit 1) when Redis does not answer.
 */
export async function openRedis(
  url: string,
  env: NodeJS.ProcessEnv,
  names: Names = namesFor(),
): Promise<Redis> {
  let sentinel: RedisSentinel | undefined;
  try {
    sentinel = loadRedisSentinel(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new OpsError(err.problems.join("; "), { exitCode: ExitCodes.Usage, cause: err });
  }
  const passwordFile = env.REDIS_PASSWORD_FILE?.trim();
  let password: string | undefined;
  if (passwordFile) {
    try {
      password = readFileSync(passwordFile, "utf8").trim();
    } catch (err) {
      throw new OpsError(`cannot read REDIS_PASSWORD_FILE ${passwordFile}: ${oneLine(err)}`, { cause: err });
    }
  }
  const username = env.REDIS_USERNAME?.trim();
  const redis = createRedis({
    url,
    name: "jetmesh-ops",
    auth: { ...(username ? { username } : {}), ...(password ? { password } : {}) },
    keyPrefix: names.redisPrefix,
    ...(sentinel ? { sentinel } : {}),
    onError: () => {},
  });
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const where = sentinel ? `the primary of sentinel group ${sentinel.name}` : url;
    throw new OpsError(`cannot reach redis at ${where}: ${oneLine(err)}`, { cause: err });
  }
  return redis;
}

interface CheckOptions {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly store: LedgerStore;
  readonly stream?: string;
  /** Pause before a difference is confirmed (the projection may trail the log by a moment). */
  readonly settleMs?: number;
  readonly onProgress?: (seq: number, lastSeq: number) => void;
}

async function requireLedger(jsm: JetStreamManager, stream: string): Promise<void> {
  try {
    await jsm.streams.info(stream);
  } catch (err) {
    throw new OpsError(`no stream named ${stream}: ${oneLine(err)}`, { cause: err });
  }
}

const summary = (stream: string, fold: FoldResult, view: Awaited<ReturnType<LedgerStore["read"]>>) => ({
  stream,
  foldSeq: fold.state.seq,
  appliedSeq: view.appliedSeq,
  epoch: view.epoch !== null,
  transfers: fold.state.outcomes.size,
  accounts: fold.state.balances.size,
  skipped: fold.skipped,
});

/**
 * Folds LEDGER and compares it with the projection; a difference is confirmed three times,
 * `settleMs` apart, folding the new tail each time (a running ledger's projection trails the log).
 * A projection without an epoch is a difference too: nobody may read it as whole.
 * @throws OpsError when LEDGER does not exist.
 */
export async function checkProjection(o: CheckOptions): Promise<RebuildCheck> {
  const stream = o.stream ?? StreamNames.Ledger;
  await requireLedger(o.jsm, stream);
  const report = await rebuild({ ...o, stream, settleMs: o.settleMs ?? 1000 });
  const differences = report.differences.map(formatDifference);
  if (report.view.epoch === null)
    differences.unshift("epoch: ledger:epoch is missing (projection wiped, or a restore under way)");
  return { ...summary(stream, report.fold, report.view), differences };
}

export function renderCheck(c: RebuildCheck): string {
  const lines = [
    ...c.skipped.map((s) => `skipped seq ${s.seq}: ${s.reason}`),
    ...c.differences,
    `folded ${c.stream} to seq ${c.foldSeq} (${c.transfers} transfers, ${c.accounts} accounts); ` +
      `projection applied-seq ${c.appliedSeq}; ${c.differences.length} difference(s)`,
  ];
  return lines.join("\n");
}

/** What a repair did: the check before, and what the projection holds after. */
export interface RepairResult {
  readonly before: RebuildCheck;
  /** `in-sync`: nothing written; `repaired`: the fold was written over the projection. */
  readonly outcome: "in-sync" | "repaired";
  /** The LEDGER sequence the projection was restored at (its new applied-seq). */
  readonly restoredSeq: number | null;
  readonly after: RebuildCheck;
}

const LOCK_MS = 30_000;

/**
 * Brings the live projection to the fold of LEDGER, safely while a ledger runs: it takes the
 * restore lock (`ledger:restore-lock`) that ledger instances take before restoring a wiped
 * projection, folds LEDGER again under it, and writes with the store's fenced `writeRestore`,
 * which deletes the epoch first, then the projection's keys, writes the fold, and sets
 * applied-seq, applied-id and the epoch (with LEDGER's creation time) in one last step. A running
 * ledger's applies find no epoch and are refused meanwhile; its projection waits for the lock to
 * go, then follows the log from the restored applied-seq (or finds applied-seq behind what it
 * applied and re-applies from there). So the projection is never written by two processes, and
 * ends as the log's fold plus whatever the ledger appends after.
 * @throws OpsError when another process holds the lock, the lock is lost while writing, or
 *   LEDGER's first messages were purged (a fold of what is left is not the whole state).
 */
export async function repairProjection(o: CheckOptions): Promise<RepairResult> {
  const stream = o.stream ?? StreamNames.Ledger;
  const before = await checkProjection(o);
  if (before.differences.length === 0)
    return { before, outcome: "in-sync", restoredSeq: null, after: before };
  const info = await o.jsm.streams.info(stream);
  if (info.state.first_seq > 1 && info.state.messages > 0)
    throw new OpsError(
      `${stream} starts at seq ${info.state.first_seq} (earlier messages purged): its fold is not the whole state; nothing repaired`,
    );
  const owner = `jetmesh-rebuild:${randomUUID()}`;
  if (!(await o.store.acquireRestoreLock(owner, LOCK_MS)))
    throw new OpsError(
      "another process is restoring the projection (ledger:restore-lock is held); try again when it is done; nothing repaired",
    );
  const renew = setInterval(() => void o.store.renewRestoreLock(owner, LOCK_MS).catch(() => {}), LOCK_MS / 3);
  let restoredSeq: number;
  try {
    const fold = await foldLedger({
      js: o.js,
      jsm: o.jsm,
      stream,
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    const epoch = JSON.stringify({
      seq: fold.state.seq,
      stream: info.created,
      by: owner,
      at: new Date().toISOString(),
    });
    if (!(await o.store.writeRestore(owner, fold.state, epoch)))
      throw new OpsError("the restore lock was lost while writing: another process restores the projection");
    restoredSeq = fold.state.seq;
  } finally {
    clearInterval(renew);
    await o.store.releaseRestoreLock(owner).catch(() => {});
  }
  const after = await checkProjection(o);
  return { before, outcome: "repaired", restoredSeq, after };
}
