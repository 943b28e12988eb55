// `jetmesh rewind` as an operator runs it (a child process) against a real nats-server and
// redis-server, under a real running stage (runStage) that counts its effects in Redis and emits
// one output per input.
import {
  deriveId,
  encodeEvent,
  EventTypes,
  eventHeaders,
  Headers,
  makeEnvelope,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import {
  createLogger,
  createRedis,
  defineStage,
  emit,
  type Redis,
  runStage,
  type StageHandle,
  stageSettings,
} from "@jetmesh/stage";
import { type ConsumerPosition, POSITIONS_BUCKET, provisionStreams } from "@jetmesh/stage/internal";
import {
  type NatsServerHandle,
  type RedisServerHandle,
  startNats,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RewindAuditEvent } from "./audit.ts";
import { jetmesh } from "./testing.ts";

const logger = createLogger({ service: "ops-rewind-test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const STAGE = "ops-rw";
const N = 6;
const runsKey = (eventId: string) => `ops-rw:runs:${eventId}`;

const stage = defineStage<"transfers.requested", { redis: Redis }>({
  name: STAGE,
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: async (evt, ctx) => ({
    effect: async () => {
      await ctx.deps.redis.incr(runsKey(evt.eventId));
      const { transferId, from, to, amountMinor, currency } = evt.data;
      return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
    },
  }),
});

/** Transfer i comes from account acc-<i>: the subjects spread over partitions. */
const request = (i: number) =>
  makeEnvelope(
    EventTypes.TransferRequested,
    {
      transferId: `tr-rw-${i}`,
      from: `acc-${i}`,
      to: "acc-bob",
      amountMinor: 100 + i,
      currency: "EUR",
      requestedAt: new Date().toISOString(),
    },
    {
      eventId: deriveId("ops-rewind-test", `tr-rw-${i}`),
      correlationId: `tr-rw-${i}`,
      causationId: `request:tr-rw-${i}`,
      producer: "gateway",
    },
  );

describe("jetmesh rewind against real servers and a running stage", () => {
  let nats: NatsServerHandle;
  let redisServer: RedisServerHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let redis: Redis;
  let handle: StageHandle;
  const reqs = Array.from({ length: N }, (_, i) => request(i + 1));
  const seqs: number[] = [];
  const times: number[] = [];
  const cli = (args: string[], input?: string) =>
    jetmesh([...args, "--server", nats.url], {
      ...(input !== undefined ? { input } : {}),
      env: { USER: "test-operator" },
    });
  const quiet = () =>
    waitFor(
      async () => {
        const c = await jsm.consumers.info(StreamNames.Ingress, STAGE).catch(() => undefined);
        return c && c.num_pending === 0 && c.num_ack_pending === 0 && c.ack_floor.stream_seq === seqs.at(-1)
          ? c
          : undefined;
      },
      { what: `${STAGE} quiet`, timeoutMs: 20_000 },
    );
  const runs = async () => Promise.all(reqs.map(async (r) => Number(await redis.get(runsKey(r.eventId)))));
  const outputs = async () => (await jsm.streams.info(StreamNames.Validation)).state.messages;
  const audits = async (): Promise<RewindAuditEvent[]> => {
    const info = await jsm.streams.info(StreamNames.Audit);
    const out: RewindAuditEvent[] = [];
    for (let q = info.state.first_seq; q <= info.state.last_seq && info.state.messages > 0; q++) {
      const m = await jsm.streams.getMessage(StreamNames.Audit, { seq: q });
      if (m?.subject === "audit.rewind") out.push(m.json<RewindAuditEvent>());
    }
    return out;
  };

  beforeAll(async () => {
    [nats, redisServer] = await Promise.all([startNats(), startRedis({ persistence: false })]);
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await provisionStreams(jsm, { replicas: 1, logger });
    redis = createRedis({ url: redisServer.url, name: "ops-rewind-test" });
    const settings = stageSettings({
      ackWaitMs: 2000,
      maxDeliver: 3,
      retryBaseMs: 50,
      retryMaxMs: 200,
      idempotencyTtlMs: 4 * 24 * 3_600_000, // longer than the event streams' age limit (3 days)
      idempotencyHorizonMs: 600_000,
    });
    handle = await runStage({ definition: stage, deps: { redis }, nc, redis, logger, settings });
    for (const env of reqs) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(eventHeaders(env))) if (k !== Headers.MsgId) h.set(k, v);
      const ack = await js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
        msgID: env.eventId,
        headers: h,
      });
      seqs.push(ack.seq);
      times.push(
        Date.parse((await jsm.streams.getMessage(StreamNames.Ingress, { seq: ack.seq }))!.time.toISOString()),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    await quiet();
    expect(await runs()).toEqual(Array(N).fill(1));
    expect(await outputs()).toBe(N);
  }, 60_000);

  afterAll(async () => {
    await handle?.stop().catch(() => {});
    redis?.disconnect();
    await nc?.close().catch(() => {});
    await stopAllProcesses();
    await Promise.all([nats?.stop(), redisServer?.stop()]);
  });

  it("ops - rewind --dry-run prints the plan and changes nothing", async () => {
    const before = await jsm.consumers.info(StreamNames.Ingress, STAGE);
    const r = await cli(["rewind", STAGE, "--from", String(seqs[2]), "--dry-run"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`consumer   ${STAGE} on stream INGRESS`);
    expect(r.stdout).toContain(
      `from       seq ${seqs[2]} through ${seqs.at(-1)}: ${N - 2} message(s) delivered again`,
    );
    expect(r.stdout).toContain(`idempotency key ${STAGE}:<eventId>`);
    const after = await jsm.consumers.info(StreamNames.Ingress, STAGE);
    expect([after.created, after.delivered.consumer_seq]).toEqual([
      before.created,
      before.delivered.consumer_seq,
    ]);
  });

  it("ops - rewind without a yes changes nothing", async () => {
    const before = await jsm.consumers.info(StreamNames.Ingress, STAGE);
    const r = await cli(["rewind", STAGE, "--from", String(seqs[2])], "n\n");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("jetmesh: not confirmed; nothing changed");
    expect((await jsm.consumers.info(StreamNames.Ingress, STAGE)).created).toBe(before.created);
  });

  it("ops - rewind moves the running stage's consumer back: messages from k come again, effects and outputs do not", async () => {
    const k = seqs[2] as number;
    const r = await cli(["rewind", STAGE, "--from", String(k), "--yes", "--actor", "alice"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`rewound: ${STAGE} on INGRESS delivers again from seq ${k}`);
    const c = await quiet();
    // The recreated consumer delivered exactly the messages from k on, each once, and the stage acked them.
    expect(c.config.opt_start_seq).toBe(k);
    expect(c.delivered.consumer_seq).toBe(N - 2);
    expect(c.config.ack_wait).toBe(2000 * 1_000_000);
    // Their keys were done: no effect ran again, no output was published again.
    expect(await runs()).toEqual(Array(N).fill(1));
    expect(await outputs()).toBe(N);
    // The recorded position follows the rewound consumer to the end again (never the 0 the server
    // reports for a consumer that acked nothing yet: a consumer lost then would start at seq 1).
    const kv = await new Kvm(js).open(POSITIONS_BUCKET);
    await waitFor(
      async () => (await kv.get(`INGRESS.${STAGE}`))?.json<ConsumerPosition>().ackFloor === seqs.at(-1),
      { what: "the stage recorded its position at the end", timeoutMs: 20_000 },
    );
    const [event] = (await audits()).filter((e) => !e.dryRun);
    expect(event).toMatchObject({
      actor: "alice",
      stage: STAGE,
      stream: "INGRESS",
      fromSeq: k,
      messages: N - 2,
    });
  }, 60_000);

  it("ops - rewind --from a time starts at the first message stored at or after it; --partition narrows the start", async () => {
    const at = new Date(times[4] as number).toISOString();
    const r = await cli(["rewind", STAGE, "--from", at, "--dry-run", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ fromSeq: seqs[4], messages: N - 4 });
    const env = reqs[3]!;
    const partition = subjectFor(env.type, env.data.from).split(".").at(-1) as string;
    const p = await cli(["rewind", STAGE, "--from", "1", "--partition", partition, "--dry-run", "--json"]);
    expect([p.code, p.stderr, p.stdout]).toEqual([0, "", expect.any(String)]);
    const plan = JSON.parse(p.stdout);
    expect(plan.partition.id).toBe(partition);
    const firstOnPartition = reqs.findIndex((q) => subjectFor(q.type, q.data.from).endsWith(`.${partition}`));
    expect(plan.fromSeq).toBe(seqs[firstOnPartition]);
  });

  it("ops - rewind says what is wrong in one line", async () => {
    const bad = await cli(["rewind", STAGE, "--from", "yesterday"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: option '--from <seq\|time>' argument 'yesterday' is invalid\. .*\n$/);
    const none = await cli(["rewind", "no-such-stage", "--from", "1", "--dry-run"]);
    expect([none.code, none.stderr]).toEqual([
      1,
      "jetmesh: no durable consumer named no-such-stage on any stream\n",
    ]);
  });
});
