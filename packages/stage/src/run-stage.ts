import { startLivenessProbe } from "./liveness.ts";
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import {
  type EventType,
  namesFor,
  replaySubject,
  StreamNames,
  type StreamDefinition,
  streamOf,
} from "@jetmesh/contracts";
import { type JetStreamManager, jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { StageSettings } from "./config.ts";
import { ConsumeLoop } from "./consume-loop.ts";
import { type CrashHook, createCrashHook } from "./crash-points.ts";
import { park } from "./dead-letter.ts";
import type { StageDefinition } from "./define-stage.ts";
import { ConfigError } from "./errors.ts";
import { Breakers, Gate, Slots } from "./flow-control.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { ReadinessProbe } from "./http-server.ts";
import { createIdempotencyStore, REDIS_FULL } from "./idempotency-store.ts";
import { createStageMetrics, metricsRegistry } from "./metrics.ts";
import { CONFIRM_TIMEOUT_MS, createProcessor } from "./process-message.ts";
import { openPositions } from "./positions.ts";
import { untilAnswered } from "./start-retry.ts";
import {
  type ConsumerSpec,
  ensureConsumer,
  ensureStream,
  StreamMissingError,
  streamPresent,
  inputConsumerSpec,
  replayConsumerSpec,
} from "./provision.ts";
import { createEventPublisher } from "./publisher.ts";
import { ReplyInbox } from "./reply-inbox.ts";
import { checkSchemaRegistry, warnDeprecatedInputs } from "./schema-registry.ts";
import { checkSettings, type StreamFacts } from "./settings-check.ts";

/** What {@link runStage} needs; main.ts builds the clients. */
export interface RunStageOptions<In extends EventType, Deps> {
  readonly definition: StageDefinition<In, Deps>;
  readonly deps: Deps;
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly logger: Logger;
  readonly settings: StageSettings;
  readonly registry?: Registry;
  /** Test seam: replaces the JETMESH_CRASH_AT hook (e.g. one that throws SimulatedCrash). */
  readonly crashHook?: CrashHook;
  /**
   * Told what start-up waits for (a stream only the deploy step creates), each time it
   * checks: a service shows it in /readyz while runStage has not returned.
   */
  readonly onWaiting?: (what: string) => void;
}

/** A running stage. */
export interface StageHandle extends ReadinessProbe {
  /** NATS and Redis reachable, every input's pull bound, not draining. */
  ready(): boolean;
  /**
   * Drains: stops pulling, waits up to the drain timeout for in-flight messages to
   * finish, naks the rest (they are redelivered), closes its subscriptions. Does not
   * close the NATS or Redis clients: main.ts owns them.
   */
  stop(): Promise<void>;
  /** Numbers for tests and benches. */
  stats(): { inFlight: number; maxInFlightSeen: number; pending: number; ackPending: number };
}

/** How often a stage reads how full its output streams and the DLQ are. */

/** The stage's probes, bound to its deps. */
function bindProbes<Deps>(
  probes: NonNullable<StageDefinition<EventType, Deps>["probes"]>,
  deps: Deps,
): Record<string, () => Promise<void>> {
  return Object.fromEntries(Object.entries(probes).map(([name, probe]) => [name, () => probe(deps)]));
}

function versionAtLeast(v: string, want: readonly number[]): boolean {
  const have = v.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < want.length; i++) {
    if ((have[i] ?? 0) !== want[i]) return (have[i] ?? 0) > (want[i] ?? 0);
  }
  return true;
}

function facts(info: StreamInfo, def: StreamDefinition<string>): StreamFacts {
  return {
    name: info.config.name,
    duplicateWindowMs: Math.floor((info.config.duplicate_window ?? 0) / 1_000_000),
    replicas: info.config.num_replicas,
    retention: String(info.config.retention),
    critical: def.critical,
    maxAgeMs: Math.floor((info.config.max_age ?? 0) / 1_000_000),
  };
}

/**
 * The durable through which the stage takes operators' replays of what it parked (`jetmesh
 * dlq replay`): `<stage>-replay` on REPLAY, filtered on `replay.<stage>`. REPLAY is created by
 * the deploy step only; without it (or without the right to see it) the stage runs without
 * replays and says so, rather than refusing to start over an operators' stream.
 */
async function replayConsumerOf(
  jsm: JetStreamManager,
  stage: string,
  s: StageSettings,
  logger: Logger,
): Promise<ConsumerSpec | undefined> {
  const names = namesFor(s.namespace);
  const replayStream = names.stream(StreamNames.Replay);
  const present = await untilAnswered(logger, `stream ${replayStream}`, () =>
    streamPresent(jsm, replayStream),
  );
  if (!present) {
    logger.warn(
      { stream: replayStream, subject: names.subject(replaySubject(stage)) },
      "no REPLAY stream: operators' replays of this stage's parked messages are not consumed; restart the stage once the deploy step created it (deploy/streams/REPLAY.json)",
    );
    return undefined;
  }
  return replayConsumerSpec(stage, s);
}

/**
 * Starts a stage: provisions its streams (when missing) and durable consumers, refuses
 * settings that contradict exactly-once (ConfigError), then consumes every input
 * under supervision until {@link StageHandle.stop}.
 * @throws ConfigError listing every contradiction; errors of the first JetStream calls.
 */
export async function runStage<In extends EventType, Deps>(
  o: RunStageOptions<In, Deps>,
): Promise<StageHandle> {
  const def = o.definition as unknown as StageDefinition<EventType, Deps>;
  const stage = def.name;
  const s = o.settings;
  const logger = o.logger.child({ stage });
  const crash = o.crashHook ?? createCrashHook(s.crashAt, s.crashAfter);
  const jsm = await jetstreamManager(o.nc);
  const js = jetstream(o.nc);

  // Provision what the stage touches; the owning team's definitions come from contracts, named
  // in the stage's namespace (JETMESH_NAMESPACE; none in production).
  const names = namesFor(s.namespace);
  const Streams = names.streams;
  const inputDefs = def.inputs.map((i) => Streams[i.stream]);
  const outputDefs = [...new Set(def.emits.map((t) => Streams[streamOf(t).name]))];
  const all = new Map<string, StreamDefinition<string>>();
  for (const d of [...inputDefs, ...outputDefs, Streams.DLQ]) all.set(d.name, d);
  const infos = new Map<string, StreamFacts>();
  for (const d of all.values()) {
    // A stream only the deploy step creates (LEDGER) is waited for, never created here.
    for (let attempt = 0; ; attempt++) {
      try {
        const { info } = await untilAnswered(logger, `stream ${d.name}`, () =>
          ensureStream(jsm, d, { replicas: s.replicas, logger }),
        );
        infos.set(d.name, facts(info, d));
        break;
      } catch (err) {
        if (!(err instanceof StreamMissingError)) throw err;
        o.onWaiting?.(err.message);
        if (attempt % 20 === 0) logger.warn({ stream: d.name }, `waiting: ${err.message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
  const serverVersion = o.nc.info?.version ?? "0.0.0";
  const verdict = checkSettings({
    settings: s,
    inputs: inputDefs.map((d) => infos.get(d.name)!),
    outputs: outputDefs.map((d) => infos.get(d.name)!),
    dlq: infos.get(Streams.DLQ.name)!,
    serverVersion,
  });
  for (const w of verdict.warnings) logger.warn({ server_version: serverVersion }, w);
  if (verdict.problems.length) throw new ConfigError(verdict.problems);
  const consumes = def.inputs.flatMap((i) => i.types);
  // Before any consumer exists: a build that cannot read what producers write, or would write
  // a version no release taught its readers, refuses here rather than park every message.
  await untilAnswered(logger, "the schema registry", () =>
    checkSchemaRegistry({
      js,
      service: stage,
      consumes,
      produces: def.emits,
      logger,
      namespace: s.namespace,
    }),
  );
  warnDeprecatedInputs({ service: stage, consumes, logger });

  // Consumers are created (or found) before anything runs, so that a consumer lost with no
  // recorded position refuses the start here instead of replaying its stream.
  const positions = await untilAnswered(logger, "the consumer positions bucket", () =>
    openPositions(js, s.replicas, s.namespace),
  );
  const specs = def.inputs.map((input) => inputConsumerSpec(stage, input, s));
  for (const spec of specs)
    await untilAnswered(logger, `consumer ${spec.durable} on ${spec.stream}`, () =>
      ensureConsumer(jsm, spec, logger, { positions, start: s.consumerStart }),
    );
  // Replays start where the durable was, or (never recorded) at the first replay for this
  // stage: each is an operator's request to it, and one already processed finds its key done.
  // JETMESH_CONSUMER_START is about the event streams and does not apply.
  const replaySpec = def.inputs.length ? await replayConsumerOf(jsm, stage, s, logger) : undefined;
  if (replaySpec)
    await untilAnswered(logger, `consumer ${replaySpec.durable} on ${replaySpec.stream}`, () =>
      ensureConsumer(jsm, replaySpec, logger, { positions, start: "resume", unrecorded: "all" }),
    );

  const registry = o.registry ?? metricsRegistry();
  const metrics = createStageMetrics(registry);
  const store = s.mode === "exactly-once" ? createIdempotencyStore(o.redis) : undefined;
  const heartbeat = new Heartbeat({ ackWaitMs: s.ackWaitMs, leaseMs: s.leaseMs, store, logger });
  const replies = new ReplyInbox(o.nc, Math.min(s.publishTimeoutMs, CONFIRM_TIMEOUT_MS));
  const publisher = createEventPublisher({ js, replies, settings: s, logger, stage, metrics });
  const stopping = new AbortController();
  // Every message in flight that reads ctx.signal listens here (and stops listening when it
  // ends): as many listeners as slots is normal, not the leak Node's warning suspects.
  setMaxListeners(0, stopping.signal);
  const gate = new Gate();
  const breakers = new Breakers({
    gate,
    settings: s.breaker,
    // Redis full (maxmemory, noeviction) pauses the stage until it takes writes again.
    probes: {
      ...(store ? { [REDIS_FULL]: () => store.writable() } : {}),
      ...(def.probes ? bindProbes(def.probes, o.deps) : {}),
    },
    onChange: (dependency, up, detail) => {
      metrics.dependencyUp.set({ stage, dependency }, up ? 1 : 0);
      metrics.paused.set({ stage }, gate.open ? 0 : 1);
      logger[up ? "info" : "warn"](
        { dependency, detail },
        up ? "dependency back; pulling" : "dependency down; circuit open, not pulling",
      );
    },
  });
  const process = createProcessor({
    definition: def,
    deps: o.deps,
    settings: s,
    store,
    publisher,
    replies,
    js,
    logger,
    metrics,
    crash,
    heartbeat,
    breakers,
    instance: randomBytes(6).toString("hex"),
    stopping: stopping.signal,
    termWithReason: versionAtLeast(serverVersion, [2, 10, 4]),
  });

  // Pull only while NATS, Redis and every dependency with a breaker are up.
  const onRedis = (up: boolean) => () => {
    gate.set("redis", up);
    metrics.paused.set({ stage }, gate.open ? 0 : 1);
    logger[up ? "info" : "warn"](
      { dependency: "redis" },
      up ? "redis reachable; pulling" : "redis down; paused",
    );
  };
  const redisReady = onRedis(true);
  const redisDown = onRedis(false);
  o.redis.on("ready", redisReady);
  o.redis.on("close", redisDown);
  gate.set("redis", o.redis.status === "ready");
  // A server that keeps its connection but stops answering (paused, black-holed) is caught
  // by a round trip each second: unanswered for 2 s, the stage stops pulling and /readyz says so.
  const answers = (dependency: "redis" | "nats", probe: () => Promise<unknown>) =>
    startLivenessProbe({
      probe,
      onChange: (up) => {
        gate.set(`${dependency}-answers`, up);
        metrics.paused.set({ stage }, gate.open ? 0 : 1);
        logger[up ? "info" : "warn"](
          { dependency },
          up ? `${dependency} answers again; pulling` : `${dependency} connected but not answering; paused`,
        );
      },
    });
  const redisLive = answers("redis", () => o.redis.ping());
  const natsLive = answers("nats", () => o.nc.flush());
  void (async () => {
    for await (const st of o.nc.status()) {
      if (st.type === "disconnect" || st.type === "reconnect") {
        const up = st.type === "reconnect";
        gate.set("nats", up);
        metrics.paused.set({ stage }, gate.open ? 0 : 1);
        logger[up ? "info" : "warn"](
          { dependency: "nats", server: st.server },
          up ? "nats reconnected" : "nats disconnected; paused",
        );
      }
    }
  })();

  const slots = new Slots(s.maxInFlight);
  let maxInFlightSeen = 0;
  const loopOf = (spec: ConsumerSpec, accepts: ReadonlySet<string>, replays: boolean) =>
    new ConsumeLoop({
      stage,
      spec,
      positions,
      ...(replays ? { consumerStart: "resume", unrecordedStart: "all" } : { consumerStart: s.consumerStart }),
      accepts,
      js,
      jsm,
      process: (m, accepts) => {
        maxInFlightSeen = Math.max(maxInFlightSeen, slots.inUse);
        return process(m, accepts);
      },
      slots,
      gate,
      logger,
      metrics,
      pullBatch: s.maxInFlight,
      lingerMs: s.lingerMs,
      ackWaitMs: s.ackWaitMs,
      stallMs: Math.max(10_000, s.ackWaitMs),
    });
  const loops = [
    ...def.inputs.map((input, i) => loopOf(specs[i]!, new Set(input.types), false)),
    // A replay is an input event of any type the stage takes, from any of its input streams.
    ...(replaySpec ? [loopOf(replaySpec, new Set(def.inputs.flatMap((i) => i.types)), true)] : []),
  ];

  // A message that exhausted MaxDeliver without any attempt terming it (e.g. the process
  // died on its last delivery) is announced by the server; park it from the advisory.
  const advisories = def.inputs.map((input) =>
    o.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${names.stream(input.stream)}.${stage}`, {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          const adv = msg.json<{ stream: string; stream_seq: number; deliveries: number }>();
          const stored = await jsm.streams.getMessage(adv.stream, { seq: adv.stream_seq });
          if (!stored) return;
          await park(
            js,
            {
              stage,
              stream: adv.stream,
              subject: stored.subject,
              streamSequence: adv.stream_seq,
              deliveries: adv.deliveries,
              data: stored.data,
              ...(stored.header ? { headers: stored.header } : {}),
            },
            {
              errorClass: "MaxDeliveriesExceeded",
              reason: `no attempt finished within ${adv.deliveries} deliveries`,
            },
            s.namespace,
          );
          metrics.dlqParked.inc({ stage, reason: "max_deliver" });
          logger.error(
            { stream: adv.stream, stream_seq: adv.stream_seq },
            "parked a message that exhausted max deliver",
          );
        })().catch((e) => logger.error({ err: e }, "could not park after a max deliveries advisory"));
      },
    }),
  );

  for (const l of loops) l.start();
  logger.info(
    {
      inputs: def.inputs.map((i) => i.stream),
      replays: replaySpec ? `${replaySpec.durable} on ${replaySpec.stream}` : null,
      mode: s.mode,
      max_in_flight: s.maxInFlight,
      ack_mode: s.ackMode,
    },
    "stage started",
  );
  let draining = false;

  const health = () => {
    const nats = !o.nc.isClosed() && gate.reasons.indexOf("nats") < 0 && natsLive.answering();
    const redis = o.redis.status === "ready" && redisLive.answering();
    const consumers = loops.every((l) => l.bound);
    const down = breakers.open;
    return {
      ok: nats && redis && consumers && down.length === 0 && !draining,
      nats,
      redis,
      consumers,
      ...(down.length ? { dependencies_down: down } : {}),
      draining,
      in_flight: slots.inUse,
      max_in_flight_seen: maxInFlightSeen,
    };
  };
  return {
    name: stage,
    health,
    ready: () => health().ok,
    stats: () => ({
      inFlight: slots.inUse,
      maxInFlightSeen,
      pending: loops.reduce((n, l) => n + l.pending, 0),
      ackPending: loops.reduce((n, l) => n + l.ackPending, 0),
    }),
    async stop() {
      if (draining) return;
      draining = true;
      logger.info("draining");
      // In-flight handlers keep a live signal until just before the drain deadline: work that
      // can finish in time (a bank call) is not cut short by the stop. What still runs then
      // sees its signal aborted, and its message is nak'd at the deadline.
      const lead = Math.min(1000, s.drainTimeoutMs / 10);
      const abortAt = setTimeout(() => stopping.abort(), s.drainTimeoutMs - lead);
      await Promise.all(loops.map((l) => l.stop(s.drainTimeoutMs)));
      clearTimeout(abortAt);
      heartbeat.stop();
      breakers.stop();
      redisLive.stop();
      natsLive.stop();
      stopping.abort();
      for (const a of advisories) a.unsubscribe();
      o.redis.off("ready", redisReady);
      o.redis.off("close", redisDown);
      logger.info("drained");
    },
  };
}
