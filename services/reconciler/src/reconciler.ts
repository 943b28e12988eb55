import { hostname } from "node:os";
import {
  AccountPatterns,
  decodeEvent,
  EventTypes,
  type Finding,
  FindingKinds,
  Headers,
  type Names,
  namesFor,
  PipelineStreams,
  StreamNames,
} from "@jetmesh/contracts";
import { type ProcessClients, type ProcessParts, type StageSettings, untilAnswered } from "@jetmesh/stage";
import {
  type ConsumerPosition,
  type DeclaredConsumerSettings,
  ensureStream,
  POSITIONS_BUCKET,
  StreamMissingError,
} from "@jetmesh/stage/internal";
import { type KV, Kvm } from "@nats-io/kv";
import {
  type JetStreamClient,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { type BankReader, compareWithBank, createBankReader, noRecord, type PayoutOutcome } from "./bank.ts";
import { type Discrepancy, FindingBook } from "./book.ts";
import { type Step, StepEnds } from "./catalog.ts";
import type { ReconcilerConfig, ReconcilerSettings } from "./config.ts";
import { DlqLedger, type Parked } from "./dlq.ts";
import { checkDeclaredSettings } from "./drift.ts";
import { LedgerFold, type Overdraft } from "./fold.ts";
import { startInfraHealth } from "./infra-health.ts";
import { StreamFollower } from "./follower.ts";
import { type Check, Checks, createReconcilerMetrics, type ReconcilerMetrics } from "./metrics.ts";
import { compareAccounts, servedAccounts } from "./projection.ts";
import { type EventRef, type OpenTransfer, SagaTracker } from "./sagas.ts";

/** What {@link startReconciler} needs. */
export interface ReconcilerOptions {
  readonly nc: NatsConnection;
  readonly redis: Redis;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly settings: ReconcilerSettings;
  /** The mesh's shared protocol settings: the consumer settings declared for the stages, replicas. */
  readonly stage: Pick<StageSettings, "ackWaitMs" | "maxAckPending" | "replicas"> & {
    /** JETMESH_NAMESPACE: every stream, subject and bucket read or written is named there. */
    readonly namespace?: string;
  };
  /** Default: the HTTP API at settings.bankUrl. */
  readonly bank?: BankReader;
  /** Names this instance in the findings it writes (default host-pid). */
  readonly instance?: string;
}

/** The scheduled checks, by name. */
export type ScheduledCheck = Exclude<Check, "event">;

/** A running reconciler. */
export interface Reconciler {
  /** Resolves once every stream was read to its end at start; the scheduled checks run from then on. */
  readonly ready: Promise<void>;
  health(): { ok: boolean; [detail: string]: unknown };
  /** Findings open on RECONCILE, as this instance knows them. */
  openFindings(): Finding[];
  /** Runs one scheduled check now, waiting for a run in progress first (tests). */
  runCheck(check: ScheduledCheck): Promise<void>;
  stop(): Promise<void>;
}

const trace = (id: string) => `pnpm jetmesh trace ${id}`;
const CHUNK = 500;
const PIPELINE_ORDER: readonly string[] = Object.values(EventTypes);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Starts the reconciler: follows every pipeline stream, the DLQ and RECONCILE from their first
 * message with ordered consumers (nothing durable on the server: instances run side by side),
 * and checks, as events arrive and on a schedule, that exactly-once holds (README.md). Every
 * discrepancy is written to RECONCILE once, and closed once it resolves (book.ts).
 */
export function startReconciler(o: ReconcilerOptions): Reconciler {
  return new Running(o);
}

class Running implements Reconciler {
  readonly ready: Promise<void>;
  readonly #o: ReconcilerOptions;
  readonly #names: Names;
  readonly #s: ReconcilerSettings;
  readonly #log: Logger;
  readonly #metrics: ReconcilerMetrics;
  readonly #bank: BankReader;
  readonly #js: JetStreamClient;
  readonly #instance: string;
  readonly #fold = new LedgerFold();
  readonly #sagas = new SagaTracker();
  readonly #dlq = new DlqLedger();
  readonly #payouts = new Map<string, PayoutOutcome>();
  readonly #followers = new Map<string, StreamFollower>();
  /** Accounts LEDGER moved since the last sample. */
  readonly #dirty = new Set<string>();
  readonly #accounts: string[] = [];
  readonly #known = new Set<string>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Overdrafts found while reading LEDGER, written once the book has caught up. */
  readonly #overdrafts: Overdraft[] = [];
  #jsm: JetStreamManager | undefined;
  #book: FindingBook | undefined;
  #ready = false;
  #stopped = false;
  #waitingFor = "nats";
  /** Keys of streams and consumers found missing, and since when (the grace of a deploy). */
  readonly #missingSince = new Map<string, number>();
  #positions: Promise<KV> | undefined;

  constructor(o: ReconcilerOptions) {
    this.#o = o;
    this.#names = namesFor(o.stage.namespace);
    this.#s = o.settings;
    this.#log = o.logger;
    this.#js = jetstream(o.nc);
    this.#bank = o.bank ?? createBankReader({ url: o.settings.bankUrl, timeoutMs: o.settings.bankTimeoutMs });
    this.#instance = o.instance ?? `${hostname()}-${process.pid}`;
    this.#metrics = createReconcilerMetrics(o.registry, { openFindings: () => this.openFindings() });
    this.ready = this.#start();
    this.ready.catch(() => {});
  }

  openFindings(): Finding[] {
    return this.#book?.open() ?? [];
  }

  health() {
    const lag = Object.fromEntries([...this.#followers.values()].map((f) => [f.stream, f.position().lag]));
    return this.#ready && !this.#stopped
      ? { ok: true, open_findings: this.openFindings().length, lag }
      : { ok: false, waiting_for: this.#stopped ? "nothing: stopped" : this.#waitingFor, lag };
  }

  async #start(): Promise<void> {
    const jsm = await untilAnswered(this.#log, "jetstream", () => jetstreamManager(this.#o.nc));
    this.#jsm = jsm;
    const reconcile = this.#names.streams.RECONCILE;
    this.#waitingFor = `stream ${reconcile.name}`;
    for (;;) {
      try {
        await untilAnswered(this.#log, `stream ${reconcile.name}`, () =>
          ensureStream(jsm, reconcile, { replicas: this.#o.stage.replicas, logger: this.#log }),
        );
        break;
      } catch (err) {
        // Permissions that leave creation to the deploy step: wait for it, unready, as a stage does.
        if (!(err instanceof StreamMissingError)) throw err;
        this.#waitingFor = err.message;
        this.#log.warn({ stream: reconcile.name }, err.message);
        await sleep(2000);
        if (this.#stopped) return;
      }
    }
    const book = new FindingBook({
      js: this.#js,
      jsm,
      logger: this.#log,
      instance: this.#instance,
      namespace: this.#names.namespace,
      onWrite: (f) => {
        this.#metrics.written.inc({ kind: f.kind, state: f.state });
        this.#log.warn(
          { kind: f.kind, state: f.state, key: f.key, transfer_id: f.transferId, finding_id: f.findingId },
          `finding ${f.state}: ${f.summary}`,
        );
      },
    });
    this.#book = book;
    // The book first: a finding another instance opened or closed is known before any check.
    const own = this.#follow(StreamNames.Reconcile, (m) => book.read(m));
    this.#waitingFor = "the findings on RECONCILE";
    await own.caughtUp();
    if (this.#stopped) return;
    for (const stream of PipelineStreams) this.#follow(stream, (m) => this.#onEvent(stream, m));
    this.#follow(StreamNames.Dlq, (m) => this.#dlq.read(m));
    for (const f of this.#followers.values()) {
      this.#waitingFor = `reading ${f.stream} to its end`;
      await f.caughtUp();
      if (this.#stopped) return;
    }
    if (this.#stopped) return;
    await this.#adoptOpenFindings();
    for (const od of this.#overdrafts.splice(0)) await this.#report(overdraftFinding(od));
    this.#ready = true;
    this.#metrics.ready.set(1);
    this.#log.info(
      {
        open_transfers: this.#sagas.openCount,
        accounts: this.#fold.accountCount,
        ledger_seq: this.#fold.seq,
      },
      "reconciler caught up; checks running",
    );
    const every = (check: ScheduledCheck, ms: number) => {
      // A round still running when the next is due is skipped, not queued behind it.
      const t = setInterval(() => {
        if (!this.#inFlight.has(check)) void this.runCheck(check).catch(() => {});
      }, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(Checks.Deadlines, this.#s.scanMs);
    every(Checks.ProjectionSample, this.#s.sampleMs);
    every(Checks.ProjectionFull, this.#s.fullCheckMs);
    every(Checks.Bank, this.#s.bankCheckMs);
    every(Checks.Dlq, this.#s.dlqCheckMs);
    every(Checks.Settings, this.#s.settingsCheckMs);
    every(Checks.ConsumerLag, this.#s.consumerLagMs);
    // A first round of the slower checks now, not one interval after start.
    for (const c of [
      Checks.Settings,
      Checks.ConsumerLag,
      Checks.Dlq,
      Checks.ProjectionFull,
      Checks.Bank,
    ] as const)
      void this.runCheck(c).catch(() => {});
  }

  /** Follows `stream` (a contract name) as the namespace names it; followers are keyed by contract name. */
  #follow(stream: string, onMessage: (m: JsMsg) => void): StreamFollower {
    const f = new StreamFollower({
      js: this.#js,
      jsm: this.#jsm as JetStreamManager,
      stream: this.#names.stream(stream),
      logger: this.#log,
      onMessage,
    });
    this.#followers.set(stream, f);
    f.start();
    return f;
  }

  /** One pipeline event: the saga of its transfer, the fold for LEDGER, the outcome for PAYOUTS. */
  #onEvent(stream: string, m: JsMsg): void {
    this.#metrics.checks.inc({ check: Checks.Event });
    const h = m.headers;
    const type = h?.get(Headers.EventType) ?? "";
    const at = Number(m.timestampNanos / 1_000_000n);
    let transferId = h?.get(Headers.CorrelationId) ?? "";
    let bank: boolean | undefined;
    if (stream === StreamNames.Ledger) {
      // The fold needs the amounts: the only stream whose bodies are decoded.
      let env: ReturnType<typeof decodeEvent>;
      try {
        env = decodeEvent(m.data);
      } catch (err) {
        // The ledger skips it too (nothing moves); the fold still stands at this sequence.
        this.#fold.skip(m.seq);
        this.#log.error({ err, stream_seq: m.seq }, "undecodable message in LEDGER; folded as nothing");
        return;
      }
      transferId = env.correlationId;
      const { moved, overdrafts } = this.#fold.apply(m.seq, env, at);
      for (const a of moved) {
        this.#dirty.add(a);
        if (!this.#known.has(a)) {
          this.#known.add(a);
          this.#accounts.push(a);
        }
      }
      for (const od of overdrafts) {
        if (this.#ready) void this.#report(overdraftFinding(od));
        else this.#overdrafts.push(od);
      }
      if (env.type === EventTypes.LedgerPosted) bank = AccountPatterns.bank.test(env.data.to);
    } else if (
      stream === StreamNames.Payouts &&
      (type === EventTypes.PayoutCompleted || type === EventTypes.PayoutFailed)
    ) {
      const eventId = h?.get(Headers.EventId);
      if (!this.#payouts.has(transferId))
        this.#payouts.set(transferId, { type, seq: m.seq, at, ...(eventId ? { eventId } : {}) });
    }
    if (!transferId || !type) return;
    const eventId = h?.get(Headers.EventId);
    const causationId = h?.get(Headers.CausationId);
    const ref: EventRef = {
      type,
      stream,
      seq: m.seq,
      at,
      ...(eventId ? { eventId } : {}),
      ...(causationId ? { causationId } : {}),
    };
    const p = this.#sagas.observe(transferId, ref, bank);
    if (!p || !this.#ready || (p.before === p.after && !p.finished)) return;
    // Any stuck finding of this transfer for a step it has now left, whichever instance opened
    // it (one that died before closing it, or one ahead of this one).
    const open = this.#book?.openStuck(transferId);
    const steps = new Set<Step>(p.resolved ? [p.resolved] : []);
    for (const key of open ?? []) steps.add(key.slice(key.lastIndexOf("@") + 1) as Step);
    for (const step of steps) if (step !== p.after) void this.#closeStuck(transferId, step, ref);
  }

  async #closeStuck(transferId: string, step: Step, by: EventRef): Promise<void> {
    await this.#resolve(
      FindingKinds.StuckTransfer,
      `${transferId}@${step}`,
      `transfer ${transferId} left step ${step}: ${by.type} at ${by.stream} seq ${by.seq}`,
      { step, resolvedBy: by, lateByMs: Date.now() - by.at },
    );
  }

  /** At start: open stuck findings (written before, by any instance) are tied to their transfers, or closed. */
  async #adoptOpenFindings(): Promise<void> {
    for (const f of this.openFindings()) {
      if (f.kind !== FindingKinds.StuckTransfer || !f.transferId) continue;
      const step = f.key.slice(f.key.lastIndexOf("@") + 1) as Step;
      const t = this.#sagas.get(f.transferId);
      if (t && t.step === step) t.flagged = step;
      else if (t || this.#sagas.isFinished(f.transferId))
        await this.#resolve(FindingKinds.StuckTransfer, f.key, `transfer ${f.transferId} left step ${step}`, {
          step,
          now: t?.step ?? "finished",
        });
    }
  }

  async runCheck(check: ScheduledCheck): Promise<void> {
    if (!this.#ready || this.#stopped) return;
    const running = this.#inFlight.get(check);
    if (running) await running;
    const run = this.#run(check).finally(() => this.#inFlight.delete(check));
    this.#inFlight.set(check, run);
    return run;
  }

  async #run(check: ScheduledCheck): Promise<void> {
    try {
      switch (check) {
        case Checks.Deadlines:
          return await this.#checkDeadlines();
        case Checks.ProjectionSample:
          return await this.#checkAccounts(this.#sample(), check);
        case Checks.ProjectionFull: {
          const all = new Set([...this.#fold.accounts(), ...(await servedAccounts(this.#o.redis))]);
          return await this.#checkAccounts([...all], check);
        }
        case Checks.Bank:
          return await this.#checkBank();
        case Checks.Dlq:
          return await this.#checkDlq();
        case Checks.Settings:
          return await this.#checkSettings();
        case Checks.ConsumerLag:
          return await this.#checkConsumerLag();
      }
    } catch (err) {
      this.#metrics.checkFailures.inc({ check });
      this.#log.warn({ err, check }, "check could not run; the next round tries again");
    }
  }

  #readPast = (step: Step, t: number): boolean =>
    (this.#followers.get(StepEnds[step].stream)?.position().frontierMs ?? 0) >= t;

  async #checkDeadlines(): Promise<void> {
    const now = Date.now();
    const positions = [...this.#followers.values()].map((f) => f.position());
    for (const p of positions) {
      this.#metrics.lagMessages.set({ stream: p.stream }, p.lag);
      this.#metrics.lagSeconds.set(
        { stream: p.stream },
        p.behindSinceMs ? Math.max(0, (now - p.behindSinceMs) / 1000) : 0,
      );
    }
    // A finished transfer is remembered until every follower has read past its end (plus a margin).
    this.#sagas.prune(Math.min(...positions.map((p) => p.frontierMs)) - 60_000);
    this.#metrics.openTransfers.set(this.#sagas.openCount);
    const overdue = this.#sagas.overdue(now, this.#s.deadlines, this.#readPast);
    this.#metrics.checks.inc({ check: Checks.Deadlines }, this.#sagas.openCount);
    for (const t of overdue) {
      const step = t.step as Step;
      if (this.#book?.isOpen(FindingKinds.StuckTransfer, `${t.transferId}@${step}`)) {
        t.flagged = step;
        continue;
      }
      const parked = this.#dlq.parkedFor(t.transferId);
      if (await this.#report(stuckFinding(t, now, this.#s.deadlines[step], parked))) t.flagged = step;
      else if (this.#book?.get(FindingKinds.StuckTransfer, `${t.transferId}@${step}`)) t.flagged = step;
    }
  }

  /** Accounts moved since the last sample, the accounts of open mismatches, then random ones. */
  #sample(): string[] {
    const out = new Set<string>();
    for (const f of this.openFindings())
      if (f.kind === FindingKinds.ProjectionMismatch && f.account) out.add(f.account);
    // Moved accounts beyond the sample's size wait for the next one.
    for (const a of this.#dirty) {
      if (out.size >= this.#s.sampleSize) break;
      out.add(a);
      this.#dirty.delete(a);
    }
    for (let i = 0; i < this.#s.sampleSize && out.size < this.#s.sampleSize && this.#accounts.length; i++)
      out.add(this.#accounts[Math.floor(Math.random() * this.#accounts.length)] as string);
    return [...out];
  }

  async #checkAccounts(accounts: readonly string[], check: Check): Promise<void> {
    for (let i = 0; i < accounts.length; i += CHUNK) {
      const results = await compareAccounts(this.#o.redis, this.#fold, accounts.slice(i, i + CHUNK));
      this.#metrics.checks.inc({ check }, results.length);
      for (const r of results) {
        if (r.kind === "skipped") continue;
        const found = r.kind === "differs" ? r.found : [];
        for (const d of found) await this.#report(d);
        const foundKeys = new Set(found.map((d) => d.key));
        for (const f of this.openFindings()) {
          if (f.kind !== FindingKinds.ProjectionMismatch || f.account !== r.account || foundKeys.has(f.key))
            continue;
          await this.#resolve(
            f.kind,
            f.key,
            `Redis serves ${f.key} as the fold of LEDGER gives it again (applied seq ${r.appliedSeq})`,
            { appliedSeq: r.appliedSeq },
          );
        }
      }
    }
  }

  async #checkBank(): Promise<void> {
    const positions = [StreamNames.Ledger, StreamNames.Payouts].map((s) =>
      this.#followers.get(s)?.position(),
    );
    const startedAt = Date.now();
    const horizon = Math.min(startedAt, ...positions.map((p) => p?.frontierMs ?? 0));
    const { payouts, refusals } = await this.#bank.list();
    const cmp = compareWithBank({
      postings: this.#fold.postings(),
      outcomes: this.#payouts,
      payouts,
      refusals,
      horizon,
      graceMs: this.#s.bankGraceMs,
      isPosted: (tid) => this.#fold.posting(tid) !== undefined,
    });
    for (const tid of cmp.confirm.slice(0, 100)) {
      const p = this.#fold.posting(tid);
      const outcome = this.#payouts.get(tid);
      if (!p || !outcome) continue;
      const st = await this.#bank.status(`payout:${tid}`);
      if (st.status === "unknown") {
        const d = noRecord(p, outcome);
        cmp.found.set(d.key, d);
      }
    }
    this.#metrics.checks.inc({ check: Checks.Bank }, cmp.judged.size);
    for (const d of cmp.found.values()) await this.#report(d);
    for (const f of this.openFindings()) {
      if (f.kind !== FindingKinds.BankMismatch || !f.transferId || cmp.found.has(f.key)) continue;
      if (!cmp.judged.has(f.transferId)) continue;
      await this.#resolve(
        f.kind,
        f.key,
        `the bank's record of transfer ${f.transferId} agrees with LEDGER and PAYOUTS again`,
        {
          payouts: payouts.filter((p) => p.transferId === f.transferId),
          refusals: refusals.filter((r) => r.transferId === f.transferId),
        },
      );
    }
  }

  async #checkDlq(): Promise<void> {
    const jsm = this.#jsm as JetStreamManager;
    const follower = this.#followers.get(StreamNames.Dlq);
    const info = await jsm.streams.info(this.#names.stream(StreamNames.Dlq), { deleted_details: true });
    // Read what was parked up to now before judging what is gone.
    if (follower && follower.position().seq < info.state.last_seq)
      await Promise.race([follower.caughtUp(), sleep(2000)]);
    this.#dlq.sync(info);
    const now = Date.now();
    const { counts, oldest } = this.#dlq.summary();
    this.#metrics.dlqMessages.reset();
    for (const c of counts.values())
      this.#metrics.dlqMessages.set({ stage: c.stage, error: c.errorClass }, c.count);
    this.#metrics.dlqOldest.set(oldest ? Math.max(0, (now - oldest.at) / 1000) : 0);
    const aged = this.#dlq.aged(now, this.#s.dlqMaxAgeMs);
    this.#metrics.checks.inc({ check: Checks.Dlq }, info.state.messages);
    for (const d of aged) await this.#report(d);
    for (const f of this.openFindings()) {
      if (f.kind !== FindingKinds.DlqAged) continue;
      const seq = Number(f.key.slice("DLQ#".length));
      if (this.#dlq.has(seq)) continue;
      await this.#resolve(f.kind, f.key, `DLQ message ${seq} is no longer in the DLQ`, {
        seq,
        dlqFirstSeq: info.state.first_seq,
      });
    }
  }

  /** What a consumer's stage declares for it, from the positions bucket (undefined: nothing recorded, or no access). */
  async #declaredBy(c: { stream: string; durable: string }): Promise<DeclaredConsumerSettings | undefined> {
    this.#positions ??= new Kvm(this.#js).open(this.#names.bucket(POSITIONS_BUCKET)).catch((err: unknown) => {
      this.#positions = undefined;
      throw err;
    });
    const e = await (await this.#positions).get(`${c.stream}.${c.durable}`);
    return e?.operation === "PUT" ? e.json<ConsumerPosition>().declared : undefined;
  }

  async #checkSettings(): Promise<void> {
    const { found, checked } = await checkDeclaredSettings(
      this.#jsm as JetStreamManager,
      this.#s.consumers,
      this.#o.stage,
      (c) => this.#declaredBy(c),
    );
    this.#metrics.checks.inc({ check: Checks.Settings }, checked.length);
    // A stream or consumer that is missing is reported once it has stayed missing for the
    // grace: at a deploy, stages create their consumers while the reconciler already checks.
    const now = Date.now();
    const missing = new Set<string>();
    for (const d of found) {
      if ((d.evidence as { missing?: boolean }).missing !== true) continue;
      missing.add(d.key);
      if (!this.#missingSince.has(d.key)) this.#missingSince.set(d.key, now);
    }
    for (const k of [...this.#missingSince.keys()]) if (!missing.has(k)) this.#missingSince.delete(k);
    const due = found.filter(
      (d) => !missing.has(d.key) || now - (this.#missingSince.get(d.key) ?? now) >= this.#s.missingGraceMs,
    );
    for (const d of due) await this.#report(d);
    const foundKeys = new Set(found.map((d) => d.key));
    const checkedKeys = new Set(checked);
    for (const f of this.openFindings()) {
      if (f.kind !== FindingKinds.SettingsDrift || foundKeys.has(f.key) || !checkedKeys.has(f.key)) continue;
      await this.#resolve(f.kind, f.key, `${f.key} has the declared settings again`, {});
    }
  }

  /** Exports each declared consumer's lag as the JetStream API reports it (a missing one: none). */
  async #checkConsumerLag(): Promise<void> {
    const jsm = this.#jsm as JetStreamManager;
    for (const c of this.#s.consumers) {
      const labels = { stage: c.durable, stream: c.stream };
      try {
        const info = await jsm.consumers.info(this.#names.stream(c.stream), c.durable);
        const m = this.#metrics;
        m.consumerPending.set(labels, info.num_pending);
        m.consumerAckPending.set(labels, info.num_ack_pending);
        m.consumerRedelivered.set(labels, info.num_redelivered);
        // last activity: when the server last delivered to it, and when its ack floor last moved
        const now = Date.now();
        for (const [gauge, at] of [
          [m.consumerLastDelivery, info.delivered.last_active],
          [m.consumerLastAck, info.ack_floor.last_active],
        ] as const) {
          // nats-server sends an ISO time (2.9.10 measured), whatever the client's type says
          const t = at ? Date.parse(String(at)) : Number.NaN;
          if (Number.isFinite(t)) gauge.set(labels, Math.max(0, (now - t) / 1000));
          else gauge.remove(labels);
        }
      } catch (err) {
        // Missing: the settings check reports that; a lag of 0 would be a lie.
        if (!(err instanceof JetStreamApiError && (err.code === 10014 || err.code === 10059))) throw err;
        for (const g of [
          this.#metrics.consumerPending,
          this.#metrics.consumerAckPending,
          this.#metrics.consumerRedelivered,
          this.#metrics.consumerLastDelivery,
          this.#metrics.consumerLastAck,
        ])
          g.remove(labels);
      }
    }
    this.#metrics.checks.inc({ check: Checks.ConsumerLag }, this.#s.consumers.length);
  }

  async #report(d: Discrepancy): Promise<boolean> {
    try {
      return (await this.#book?.report(d)) ?? false;
    } catch (err) {
      this.#metrics.publishFailures.inc();
      this.#log.warn({ err, kind: d.kind, key: d.key }, "finding not written; the next check tries again");
      return false;
    }
  }

  async #resolve(...args: Parameters<FindingBook["resolve"]>): Promise<boolean> {
    try {
      return (await this.#book?.resolve(...args)) ?? false;
    } catch (err) {
      this.#metrics.publishFailures.inc();
      this.#log.warn({ err, kind: args[0], key: args[1] }, "finding not closed; the next check tries again");
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await Promise.allSettled([...this.#inFlight.values()]);
    await Promise.all([...this.#followers.values()].map((f) => f.stop()));
    this.#metrics.ready.set(0);
  }
}

function stuckFinding(
  t: OpenTransfer,
  now: number,
  deadlineMs: number,
  parked: readonly Parked[],
): Discrepancy {
  const step = t.step as Step;
  const end = StepEnds[step];
  const inDlq = parked.length
    ? `; parked in the DLQ by ${[...new Set(parked.map((p) => p.stage))].join(", ")}`
    : "";
  return {
    kind: FindingKinds.StuckTransfer,
    key: `${t.transferId}@${step}`,
    transferId: t.transferId,
    summary: `transfer ${t.transferId} has waited ${Math.round((now - t.since) / 1000)} s for ${end.stage} (step ${step}, deadline ${deadlineMs} ms)${inDlq}`,
    evidence: {
      step,
      waitingFor: end.stage,
      stream: end.stream,
      since: new Date(t.since).toISOString(),
      deadlineMs,
      ageMs: now - t.since,
      // In the order they were stored (the followers read the streams side by side).
      ...(parked.length
        ? {
            dlq: parked.map((p) => ({
              seq: p.seq,
              stage: p.stage,
              errorClass: p.errorClass,
              reason: p.reason,
            })),
          }
        : {}),
      lineage: [...t.events]
        .sort((a, b) => a.at - b.at || PIPELINE_ORDER.indexOf(a.type) - PIPELINE_ORDER.indexOf(b.type))
        .map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
    },
    command: trace(t.transferId),
  };
}

function overdraftFinding(od: Overdraft): Discrepancy {
  return {
    kind: FindingKinds.InsolventPrefix,
    key: `LEDGER#${od.seq}/${od.account}/${od.currency}`,
    transferId: od.transferId,
    account: od.account,
    summary: `LEDGER up to seq ${od.seq} leaves ${od.account} at ${od.balance} ${od.currency}`,
    evidence: { seq: od.seq, eventId: od.eventId, currency: od.currency, balance: od.balance.toString() },
    command: trace(od.transferId),
  };
}

/** The reconciler as a process part for serveProcess: its probe (ready once every stream was read to its end) and its stop. */
export function reconcilerProcess(config: ReconcilerConfig): (c: ProcessClients) => ProcessParts {
  return ({ nc, redis, logger, registry }) => {
    const r = startReconciler({
      nc,
      redis,
      logger,
      registry,
      settings: config.reconcile,
      stage: config.stage,
    });
    // NATS and Redis health from the start, independent of the reconciler's catching up.
    const infra = startInfraHealth({
      nc,
      redis,
      registry,
      logger,
      intervalMs: config.reconcile.infraMs,
      timeoutMs: config.reconcile.infraTimeoutMs,
      scanBudget: config.reconcile.redisScanBudget,
      monitorUrls: config.reconcile.natsMonitorUrls,
    });
    return {
      health: { reconciler: () => r.health() },
      stop: async () => {
        await Promise.all([r.stop(), infra.stop()]);
      },
      started: r.ready,
    };
  };
}
