import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { Gate, Slots } from "./flow-control.ts";
import type { StageMetrics } from "./metrics.ts";
import { type ConsumerProgress, type PositionStore, positionOf } from "./positions.ts";
import type { Processor } from "./process-message.ts";
import { type ConsumerSpec, type ConsumerStart, consumerDrift, ensureConsumer } from "./provision.ts";

/** How long a message given back unprocessed (stopping, or a dependency went down) waits. */
const GIVE_BACK_MS = 1000;

/** Why the supervisor recreated a pull. */
export const RestartReasons = {
  HeartbeatsMissed: "heartbeats_missed",
  ConsumerDeleted: "consumer_deleted",
  ConsumerNotFound: "consumer_not_found",
  StreamNotFound: "stream_not_found",
  Stalled: "stalled",
  IteratorEnded: "iterator_ended",
  Error: "error",
} as const;

export interface ConsumeLoopOptions {
  readonly stage: string;
  readonly spec: ConsumerSpec;
  readonly accepts: ReadonlySet<string>;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly process: Processor;
  readonly slots: Slots;
  readonly gate: Gate;
  readonly logger: Logger;
  readonly metrics: StageMetrics;
  /** Batch size of each pull: the most messages buffered ahead of the slots. */
  readonly pullBatch: number;
  /**
   * How long the first delivery of a quiet spell waits for more before they are dispatched
   * in one turn (JETMESH_LINGER_MS); 0 dispatches each as it arrives.
   */
  readonly lingerMs?: number;
  readonly ackWaitMs: number;
  /** Pull again when pending work sees no delivery for this long. */
  readonly stallMs: number;
  /** Where the consumer's ack floor is recorded, so a lost consumer resumes there. */
  readonly positions?: PositionStore;
  /** Where a missing consumer starts when no position is recorded (JETMESH_CONSUMER_START). */
  readonly consumerStart?: ConsumerStart;
  /** Where a missing consumer with no recorded position starts instead of refusing (the replay durable). */
  readonly unrecordedStart?: "all";
}

/**
 * One input's consume loop under supervision: pull (bounded batch) → wait for a free
 * slot → wait for the gate → process without awaiting the result. The supervisor
 * recreates the pull (and the consumer, if it was deleted) whenever the client reports
 * missed heartbeats or a missing consumer or stream, or when messages are pending but
 * none arrives; every restart is logged and counted. Never leaves the stage silently idle.
 *
 * Its watchdog reads the consumer's info every few seconds (at most 5 s): lag and ack
 * pending for the gauges, and the server's config against the stage's declaration, so that
 * `jetmesh_consumer_config_drift` is 1 while someone has changed the consumer by hand (the
 * stage reports it, logged once per change, and never changes it back).
 */
export class ConsumeLoop {
  readonly #o: ConsumeLoopOptions;
  #messages: ConsumerMessages | undefined;
  #stopping = false;
  #lastDelivery = Date.now();
  #bound = false;
  readonly #inFlight = new Set<JsMsg>();
  /** Deliveries waiting out the linger, each holding a slot; dispatched together. */
  #held: JsMsg[] = [];
  #lingering: NodeJS.Timeout | undefined;
  #done: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  /** The drift last reported (one line per setting); undefined before the first check. */
  #drift: string | undefined;
  pending = 0;
  ackPending = 0;

  constructor(o: ConsumeLoopOptions) {
    this.#o = o;
  }

  /** True while a pull is established and the consumer answered. */
  get bound(): boolean {
    return this.#bound;
  }
  get inFlight(): number {
    return this.#inFlight.size;
  }

  start(): void {
    // Every restart reason exists at 0 from the start: increase() over a series that
    // appears at 1 sees nothing, and the first restarts would go unnoticed.
    const { stage, spec, metrics } = this.#o;
    for (const reason of Object.values(RestartReasons))
      metrics.consumerRestarts.inc({ stage, stream: spec.stream, reason }, 0);
    this.#done = this.#run();
    this.#watchdog = setInterval(
      () => void this.#watch(),
      Math.min(5000, Math.max(500, this.#o.stallMs / 4)),
    );
    this.#watchdog.unref();
  }

  /** Stops pulling; resolves when in-flight work finished or `timeoutMs` passed (the rest is nak'd). */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    this.#o.gate.wake();
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#messages?.stop();
    // Held deliveries were not started: given back, like those arriving while stopping.
    this.#dispatchHeld();
    const deadline = Date.now() + timeoutMs;
    while (this.#inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const m of this.#inFlight) m.nak();
    await this.#done?.catch(() => {});
    await this.#recordPosition();
  }

  /** Records the consumer's ack floor (best effort: the next record or stop tries again). */
  async #recordPosition(progress?: ConsumerProgress): Promise<void> {
    const { positions, spec } = this.#o;
    if (!positions) return;
    try {
      const ackFloor = positionOf(progress ?? (await this.#o.jsm.consumers.info(spec.stream, spec.durable)));
      if (ackFloor !== undefined) await positions.record(spec.stream, spec.durable, ackFloor);
    } catch (err) {
      this.#o.logger.debug({ err, stream: spec.stream }, "consumer position not recorded");
    }
  }

  /** Records the settings this stage declares for its consumer, next to its position (best effort). */
  async #declare(): Promise<void> {
    const { positions, spec } = this.#o;
    if (!positions) return;
    try {
      const ackFloor = (await this.#o.jsm.consumers.info(spec.stream, spec.durable)).ack_floor.stream_seq;
      await positions.declare(spec.stream, spec.durable, ackFloor, {
        ...(spec.filterSubject ? { filterSubject: spec.filterSubject } : {}),
        ackWaitMs: spec.ackWaitMs,
        maxAckPending: spec.maxAckPending,
      });
    } catch (err) {
      this.#o.logger.debug({ err, stream: spec.stream }, "consumer declaration not recorded");
    }
  }

  /** Ends the current pull so that #run opens a new one. */
  restart(reason: string, detail?: unknown): void {
    if (this.#stopping) return;
    this.#o.logger.warn({ stream: this.#o.spec.stream, reason, detail }, "restarting consumer pull");
    this.#o.metrics.consumerRestarts.inc({ stage: this.#o.stage, stream: this.#o.spec.stream, reason });
    this.#bound = false;
    this.#messages?.stop();
  }

  async #run(): Promise<void> {
    const { spec, logger } = this.#o;
    let failures = 0;
    while (!this.#stopping) {
      // Nothing is pulled while a dependency is down: a message pulled now would only wait,
      // or time out and come back, spending its deliveries against the outage.
      await this.#o.gate.whenOpen();
      if (this.#stopping) break;
      let unsubscribe: () => void = () => {};
      try {
        const { drift } = await ensureConsumer(this.#o.jsm, spec, logger, {
          ...(this.#o.positions ? { positions: this.#o.positions } : {}),
          ...(this.#o.consumerStart ? { start: this.#o.consumerStart } : {}),
          ...(this.#o.unrecordedStart ? { unrecorded: this.#o.unrecordedStart } : {}),
        });
        // ensureConsumer has logged it.
        this.#reportDrift(drift, { logged: true });
        await this.#declare();
        const consumer = await this.#o.js.consumers.get(spec.stream, spec.durable);
        const messages = await consumer.consume({ max_messages: this.#o.pullBatch });
        this.#messages = messages;
        // stop() may have run while the pull was being set up.
        if (this.#stopping) messages.stop();
        this.#bound = true;
        this.#lastDelivery = Date.now();
        failures = 0;
        void this.#watchStatus(messages);
        unsubscribe = this.#o.gate.onClose(() => {
          logger.warn(
            { stream: spec.stream, waiting_for: this.#o.gate.reasons },
            "dependency down; pull stopped",
          );
          messages.stop();
        });
        for await (const m of messages) {
          this.#lastDelivery = Date.now();
          if (this.#stopping) {
            m.nak(GIVE_BACK_MS);
            continue;
          }
          const wait = this.#o.slots.acquire();
          if (wait) {
            // Every slot is taken: what lingers goes now rather than wait for its timer.
            this.#dispatchHeld();
            await wait;
          }
          if (!this.#o.gate.open) {
            // Pulled before the gate closed: give it back for a later pull (one delivery spent).
            this.#o.slots.release();
            m.nak(GIVE_BACK_MS);
            continue;
          }
          if (this.#o.lingerMs) this.#hold(m, this.#o.lingerMs);
          else this.#dispatch(m);
        }
        if (!this.#stopping)
          this.#o.metrics.consumerRestarts.inc({
            stage: this.#o.stage,
            stream: spec.stream,
            reason: RestartReasons.IteratorEnded,
          });
      } catch (err) {
        if (this.#stopping) break;
        failures += 1;
        this.#bound = false;
        this.#o.metrics.consumerRestarts.inc({
          stage: this.#o.stage,
          stream: spec.stream,
          reason: RestartReasons.Error,
        });
        logger.warn({ err, stream: spec.stream, failures }, "consume failed; pulling again");
      }
      unsubscribe();
      this.#bound = false;
      if (!this.#stopping && this.#o.gate.open)
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
    }
  }

  /** Holds a delivery (with its slot) until the linger that its quiet spell started ends. */
  #hold(m: JsMsg, lingerMs: number): void {
    this.#held.push(m);
    this.#lingering ??= setTimeout(() => this.#dispatchHeld(), lingerMs);
  }

  /** Dispatches every held delivery in this turn; gives them back when stopping or the gate closed. */
  #dispatchHeld(): void {
    clearTimeout(this.#lingering);
    this.#lingering = undefined;
    const held = this.#held;
    this.#held = [];
    for (const m of held) {
      if (this.#stopping || !this.#o.gate.open) {
        this.#o.slots.release();
        m.nak(GIVE_BACK_MS);
      } else this.#dispatch(m);
    }
  }

  #dispatch(m: JsMsg): void {
    this.#inFlight.add(m);
    this.#o.metrics.inFlight.inc({ stage: this.#o.stage });
    this.#o
      .process(m, this.#o.accepts)
      .catch((err) => this.#o.logger.error({ err, stream_seq: m.seq }, "processor failed unexpectedly"))
      .finally(() => {
        this.#inFlight.delete(m);
        this.#o.metrics.inFlight.dec({ stage: this.#o.stage });
        this.#o.slots.release();
      });
  }

  async #watchStatus(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) {
        if (this.#messages !== messages) return;
        switch (s.type) {
          case "heartbeats_missed":
            if (s.count >= 2) this.restart(RestartReasons.HeartbeatsMissed, s);
            break;
          case "consumer_deleted":
            this.restart(RestartReasons.ConsumerDeleted, s);
            break;
          case "consumer_not_found":
            this.restart(RestartReasons.ConsumerNotFound, s);
            break;
          case "stream_not_found":
            this.restart(RestartReasons.StreamNotFound, s);
            break;
          default:
            break;
        }
      }
    } catch {
      // the status iterator ends with its pull
    }
  }

  /** Sets the drift gauge; logs when the drift differs from the last one reported. */
  #reportDrift(drift: readonly string[], o: { logged: boolean }): void {
    const { stage, spec, logger, metrics } = this.#o;
    metrics.consumerDrift.set({ stage, stream: spec.stream }, drift.length > 0 ? 1 : 0);
    const now = drift.join("\n");
    const before = this.#drift;
    this.#drift = now;
    if (now === before || o.logged) return;
    if (drift.length > 0)
      logger.warn(
        { stream: spec.stream, consumer: spec.durable, drift },
        "consumer settings drifted; not changed",
      );
    else if (before)
      logger.info(
        { stream: spec.stream, consumer: spec.durable },
        "consumer settings match the declaration again",
      );
  }

  async #watch(): Promise<void> {
    if (this.#stopping) return;
    try {
      const info = await this.#o.jsm.consumers.info(this.#o.spec.stream, this.#o.spec.durable);
      void this.#recordPosition(info);
      this.pending = info.num_pending;
      this.ackPending = info.num_ack_pending;
      const labels = { stage: this.#o.stage, stream: this.#o.spec.stream };
      this.#o.metrics.consumerPending.set(labels, info.num_pending);
      this.#o.metrics.consumerAckPending.set(labels, info.num_ack_pending);
      this.#reportDrift(consumerDrift(info.config, this.#o.spec), { logged: false });
      const idle = Date.now() - this.#lastDelivery;
      const starving = info.num_pending > 0 && this.#o.slots.inUse < this.#o.slots.size && this.#o.gate.open;
      if (this.#bound && starving && idle > this.#o.stallMs)
        this.restart(RestartReasons.Stalled, { pending: info.num_pending, idle_ms: idle });
    } catch (err) {
      // A missing consumer is recreated by #run on the next pull.
      if ((err as { code?: number }).code === 10014) this.restart(RestartReasons.ConsumerNotFound);
    }
  }
}
