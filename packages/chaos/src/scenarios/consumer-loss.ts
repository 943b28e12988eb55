import { setTimeout as sleep } from "node:timers/promises";
import type { ConsumerInfo, JetStreamManager } from "@nats-io/jetstream";
import { redisDelete, redisScan } from "../redis-ops.ts";
import { StageInputs } from "../stages.ts";
import { type FaultAction, type Injected, numbered, type Reach, type Scenario } from "../scenario.ts";

const RECREATED = "recreated at their position";
const REPLAYED = "messages replayed unguarded";
const FROM_START = "recreated from the start";
const MISSING = "not recreated";
/** How long the stage may take to notice its consumer is gone and create it again. */
const RECREATE_TIMEOUT_MS = 60_000;

/**
 * A durable consumer lost long after the keys that guarded its messages: every Redis key
 * of the stage is deleted (`SCAN MATCH <stage>:*`, as if they had expired; for the ledger
 * that includes its projection), then its durable consumer on one input stream. The stage
 * must create it again from its recorded position (`jetmesh-positions`), never from the
 * start of the stream; the messages between that position and the last acknowledged one
 * come back with no key to guard them, and the checker's I1/I2 say whether any became a
 * second effect.
 */
export const consumerLoss: Scenario = {
  name: "consumer-loss",
  title: "a durable consumer deleted after its stage's Redis keys expired; recreated from its position",
  kinds: ["consumer-loss"],
  reachNotes: {
    [RECREATED]:
      "consumers the stage created again from their recorded position (deliver_policy by_start_sequence)",
    [REPLAYED]: "messages already acknowledged before the loss and delivered again, their keys gone",
    [FROM_START]: "consumers recreated at the stream's first message although it held messages (must be 0)",
    [MISSING]: "consumers not recreated within 60 s (must be 0)",
  },
  check(_traffic, reach) {
    const problems: string[] = [];
    if ((reach[RECREATED] ?? 0) === 0) problems.push("no consumer was recreated from its recorded position");
    if ((reach[FROM_START] ?? 0) > 0)
      problems.push(`${reach[FROM_START]} consumer(s) were recreated from the start of their stream`);
    if ((reach[MISSING] ?? 0) > 0) problems.push(`${reach[MISSING]} consumer(s) were never recreated`);
    return problems;
  },
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 15_000));
    const window = durationMs / count;
    const inputs = prng.shuffle(StageInputs);
    const actions: Omit<FaultAction, "id">[] = [];
    for (let k = 0; k < count; k++) {
      const { stage, stream } = inputs[k % inputs.length] as (typeof StageInputs)[number];
      actions.push({
        atMs: Math.round(k * window + prng.float(0.1, 0.4) * window),
        kind: "consumer-loss",
        target: `${stage}/${stream}`,
        affects: [stage],
        holdMs: 0,
        params: { stage, stream },
      });
    }
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const stage = String(a.params?.stage);
    const stream = String(a.params?.stream);
    const before = await ctx.jsm.consumers.info(stream, stage);
    const keys = await redisScan(ctx.env.redis.url, `${stage}:*`);
    const deleted = await redisDelete(ctx.env.redis.url, keys);
    // Read again right before the deletion: what the consumer had acknowledged when lost.
    const last = await ctx.jsm.consumers.info(stream, stage).catch(() => before);
    const stored = (await ctx.jsm.streams.info(stream)).state;
    await ctx.jsm.consumers.delete(stream, stage);
    const endedAtMs = Date.now();
    const ackFloor = last.ack_floor.stream_seq;
    const recreated = waitRecreated(ctx.jsm, stream, stage, last.created, ctx.signal).then((info) => {
      const since = Date.now() - endedAtMs;
      if (!info) return { reach: { [MISSING]: 1 } as Reach, where: `not recreated within ${since} ms` };
      const start = info.config.opt_start_seq ?? 0;
      const byPosition = info.config.deliver_policy === "by_start_sequence" && start > 1;
      // An empty stream may start anywhere; one holding messages must resume past its first.
      const fromStart = !byPosition && stored.messages > 0;
      const where =
        `recreated ${since} ms later with deliver_policy ${info.config.deliver_policy}` +
        `${start ? `, resuming at seq ${start}` : ""} (it had acknowledged up to ${ackFloor})`;
      ctx.log(`    ${stage} on ${stream}: ${where}`);
      const reach: Reach = {
        [RECREATED]: byPosition ? 1 : 0,
        [FROM_START]: fromStart ? 1 : 0,
        [REPLAYED]: byPosition ? Math.max(0, ackFloor - start + 1) : 0,
      };
      return { reach, where };
    });
    return {
      endedAtMs,
      detail: `deleted ${deleted} redis key(s) ${stage}:*, then durable ${stage} on ${stream} (ack floor ${ackFloor}, stream ${stored.first_seq}..${stored.last_seq})`,
      reach: recreated.then((r) => r.reach),
      later: recreated.then((r) => r.where),
      settle: recreated.then(() => {}),
    };
  },
};

/** The consumer once it exists again (created after `lostCreated`); undefined after the timeout. */
async function waitRecreated(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  lostCreated: string,
  signal: AbortSignal,
): Promise<ConsumerInfo | undefined> {
  const deadline = Date.now() + RECREATE_TIMEOUT_MS;
  while (Date.now() < deadline && !signal.aborted) {
    try {
      const info = await jsm.consumers.info(stream, durable);
      if (info.created !== lostCreated) return info;
    } catch {
      // not there yet
    }
    await sleep(200);
  }
  return undefined;
}
