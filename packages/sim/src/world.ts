import {
  type AnyEnvelope,
  deriveId,
  EventTypes,
  encodeEvent,
  eventHeaders,
  makeEnvelope,
  StreamNames,
  Streams,
  subjectFor,
  timeOfTimedId,
} from "@jetmesh/contracts";
import { loadConfig as gatewayConfig } from "@jetmesh/gateway/config";
import { createGatewayServers, startStatusProjection } from "@jetmesh/gateway/start";
import { parseIdSecrets } from "@jetmesh/gateway/transfer-ids";
import { loadConfig as ledgerConfig } from "@jetmesh/ledger/config";
import { type LedgerHandle, startLedger } from "@jetmesh/ledger/start";
import { pipelineBacklog } from "@jetmesh/mesh";
import { createBankClient } from "@jetmesh/payout/bank-client";
import { loadConfig as payoutConfig } from "@jetmesh/payout/config";
import { openPayoutRecords } from "@jetmesh/payout/records";
import { payoutStage } from "@jetmesh/payout/stage";
import { loadConfig as riskConfig } from "@jetmesh/risk/config";
import { riskStage } from "@jetmesh/risk/stage";
import { createVelocityStore } from "@jetmesh/risk/velocity";
import { createLogger, type Redis, runStage, type StageHandle } from "@jetmesh/stage";
import { type CrashHook, type CrashPoint, provisionStreams, SimulatedCrash } from "@jetmesh/stage/internal";
import {
  type AcceptedTransfer,
  checkBankRecord,
  checkInvariants,
  createPrng,
  type Prng,
  readStoredEvents,
  redisBalances,
  type StoredEvent,
  streamPosition,
} from "@jetmesh/testkit";
import { loadConfig as validatorConfig } from "@jetmesh/validator/config";
import { validatorStage } from "@jetmesh/validator/stage";
import { type JetStreamClient, jetstream, jetstreamManager, type PubAck } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders, nuid } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { createSimBank, SIM_BANK_URL } from "./bank.ts";
import {
  type ClientRequest,
  requestsOnce,
  SIM_CUSTOMER,
  SIM_ID_SECRETS,
  SIM_MINTER,
  SimClients,
  simClients,
} from "./clients.ts";
import { drive } from "./drive.ts";
import { type CrashOutcome, createSimNats, type SimNats } from "./nats/index.ts";
import { createSimRedis, type SimRedis, type SimRedisSnapshot } from "./redis/index.ts";
import { installSeededRandom } from "./seeded-random.ts";
import { installVirtualTime } from "./virtual-time.ts";

/** A freeze that never ends in a world (under the 2^31 ms a timer may wait, which fake timers honour). */
const FOREVER_MS = 2_000_000_000;

export { SIM_MINTER } from "./clients.ts";
/** bank-sim refuses payouts to this account: the refusal path (payouts.failed, reversal). */
const REFUSED = "bank:sim-refused";

/** The runtime settings of every stage in a world: short, so faults resolve in virtual seconds. */
const SETTINGS: Readonly<Record<string, string>> = {
  NATS_URL: "nats://sim",
  REDIS_URL: "redis://sim",
  LOG_LEVEL: "silent",
  OTEL_SDK_DISABLED: "true",
  JETMESH_ACK_WAIT_MS: "3000",
  JETMESH_MAX_DELIVER: "20",
  JETMESH_RETRY_BASE_MS: "50",
  JETMESH_RETRY_MAX_MS: "1000",
  JETMESH_PUBLISH_TIMEOUT_MS: "2000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "5000",
  JETMESH_DRAIN_TIMEOUT_MS: "2000",
  LEDGER_SNAPSHOT_EVERY: "25",
  PAYOUT_BANK_URL: SIM_BANK_URL,
  PAYOUT_BANK_TIMEOUT_MS: "1500",
};

/** What one world does. */
export interface WorldOptions {
  readonly seed: string;
  /** Customer transfers after the mints; default 200. */
  readonly transfers?: number;
  /** Customer accounts, each minted once; default 12. */
  readonly accounts?: number;
  /** Faults on (default): crashes, lost PubAcks, broker restarts and SIGKILLs, Redis loss, rollback and outages, a difficult bank. */
  readonly faults?: boolean;
  /** Lines of trace kept for a failing seed; default 40. */
  readonly traceLines?: number;
  /**
   * How clients reach the pipeline. `http` (default): HTTP/1.1 requests to the real gateway,
   * which publishes to INGRESS. `direct`: the worlds before the gateway ran in them, with
   * their draws: transfers.requested published straight into INGRESS as the gateway would,
   * duplicates as copies (kept so that seeds found then, such as sim-88, replay).
   */
  readonly traffic?: "http" | "direct";
  /**
   * JETMESH_LINGER_MS of every stage (the gateway's status projection included); default 0,
   * the runtime's default, with which every recorded seed was found. The mesh runs its
   * stages with packages/mesh's MESH_LINGER_MS.
   */
  readonly lingerMs?: number;
}

/** What one world found. */
export interface WorldResult {
  readonly seed: string;
  readonly ok: boolean;
  /** One line per violation (invariant, message). */
  readonly violations: readonly string[];
  /** The faults injected, in order, with their virtual time. */
  readonly faults: readonly string[];
  /** The last lines of the world's trace (requests, faults, quiet). */
  readonly trace: readonly string[];
  readonly counts: {
    readonly accepted: number;
    readonly posted: number;
    readonly reversed: number;
    readonly declined: number;
    readonly rejected: number;
    readonly paid: number;
    readonly crashes: number;
    /** The bank's 409 "in use" answers: how often the in-flight path was reached. */
    readonly bank409: number;
    /** Appends the ledger's writer had refused or unanswered (conflicts of two writers, lost PubAcks). */
    readonly ledgerConflicts: number;
    /** The gateway's 409 "request in progress" answers: a repeat met its first request in flight. */
    readonly inProgress409: number;
    /** The gateway's 200 replays of a key it had answered. */
    readonly replayed200: number;
  };
  readonly virtualMs: number;
  readonly realMs: number;
}

/** A bounded trace of what happened, in virtual time. */
class Trace {
  readonly #lines: string[] = [];
  constructor(
    private readonly vt: () => number,
    private readonly start: number,
    private readonly keep: number,
  ) {}
  add(line: string): void {
    this.#lines.push(`+${((this.vt() - this.start) / 1000).toFixed(3)}s ${line}`);
    if (this.#lines.length > this.keep) this.#lines.shift();
  }
  lines(): string[] {
    return [...this.#lines];
  }
}

/**
 * E1, every hop once: a stage answers an input with one event per output type (one event id
 * per cause and type), and, unless Redis lost the stages' guards, no event is stored twice
 * (a guard that let a redelivery or a repeated request run again past the duplicate window).
 * The money invariants cannot see a hop run twice when a later stage absorbs it.
 */
export function hopsOnce(events: readonly StoredEvent[], o: { storedOnce: boolean }): string[] {
  const out: string[] = [];
  const ids = new Map<string, string>();
  const seqs = new Map<string, string>();
  for (const e of events) {
    if (!e.env) continue;
    const cause = `${e.env.causationId} ${e.env.type}`;
    const first = ids.get(cause);
    if (first === undefined) ids.set(cause, e.env.eventId);
    else if (first !== e.env.eventId)
      out.push(
        `E1 ${e.env.type} answered ${e.env.causationId} twice: events ${first} and ${e.env.eventId} (${e.stream} seq ${e.seq})`,
      );
    const at = `${e.stream} seq ${e.seq}`;
    const stored = seqs.get(e.env.eventId);
    if (stored === undefined) seqs.set(e.env.eventId, at);
    else if (o.storedOnce)
      out.push(`E1 event ${e.env.eventId} (${e.env.type}) stored twice: ${stored} and ${at}`);
  }
  return out;
}

/** A stage instance's crash hook: dies (SimulatedCrash) at a drawn share of the points it reaches. */
function crashHook(prng: Prng, rate: number, onCrash: (p: CrashPoint) => void): CrashHook {
  return (point) => {
    if (rate > 0 && prng.chance(rate)) {
      onCrash(point);
      throw new SimulatedCrash(point);
    }
  };
}

interface Running {
  readonly stop: () => Promise<void>;
}

/**
 * Runs one world: the real validator, risk, ledger and payout stages (runtime, handlers,
 * Lua scripts, the ledger's writer, follower and projection) over a simulated JetStream,
 * Redis and bank on virtual time, a seeded stream of transfers and a seeded fault
 * schedule; then waits for quiet and checks I1-I4, I6, S1, M1 from the streams and the
 * bank's record (B1-B5). Everything random comes from `seed`.
 */
export async function runWorld(o: WorldOptions): Promise<WorldResult> {
  // Real time (hrtime is not faked): what the world cost.
  const realStart = process.hrtime.bigint();
  const realMs = () => Number(process.hrtime.bigint() - realStart) / 1e6;
  const root = createPrng(o.seed);
  const vt = installVirtualTime();
  const restoreRandom = installSeededRandom(root.fork("randomness"));
  // nats.js draws inbox and consumer names from one process-wide NUID, seeded once at load:
  // reseed it, or a world's names (and what is ordered by them) depend on the worlds before.
  nuid.reset();
  const realFetch = globalThis.fetch;
  const realTimeout = AbortSignal.timeout;
  const startMs = vt.now();
  const trace = new Trace(() => vt.now(), startMs, o.traceLines ?? 40);
  const faultsOn = o.faults ?? true;
  const faultPrng = root.fork("faults");
  /** The broker SIGKILLs' own draws: added after the other faults, they shift none of them. */
  const kills = createPrng(`${o.seed}/broker-kills`);
  const faults: string[] = [];
  const fault = (what: string) => {
    const line = `+${((vt.now() - startMs) / 1000).toFixed(3)}s ${what}`;
    faults.push(line);
    trace.add(`FAULT ${what}`);
  };
  /** What a broker SIGKILL cost one durable, when it cost anything. */
  const traceCrash = (c: CrashOutcome) => {
    const [a, d] = [c.ackFloor, c.delivered];
    if (!c.torn && a.before[0] === a.after[0] && d.before[0] === d.after[0]) return;
    trace.add(
      `${c.consumer}${c.torn ? " lost its state file" : " fell back to its state file"}: ack floor ${a.before[1]} -> ${a.after[1]}, delivered ${d.before[1]} -> ${d.after[1]}`,
    );
  };
  let crashes = 0;
  /** Virtual time by which every scheduled fault has ended (and its slowest answer came back). */
  let faultsUntil = 0;
  /** Redis lost writes in this world: a hop may then legitimately run again past the window. */
  let redisLost = false;
  /** Live instances and connections by name; a killed instance leaves both (it is never stopped). */
  const running = new Map<string, Running>();
  const connections = new Map<string, NatsConnection>();
  /** Each instance's own Redis connection, as a process has: a freeze holds only its commands. */
  const instanceRedis = new Map<string, SimRedis>();
  let nats: SimNats | undefined;
  let redisSim: SimRedis | undefined;
  /** The world's API clients, in `http` traffic. */
  let clients: SimClients | undefined;
  const viaHttp = (o.traffic ?? "http") === "http";
  const bank = createSimBank({
    prng: root.fork("bank"),
    behaviour: {
      refuseAccounts: [REFUSED],
      processingMinMs: 20,
      // Sometimes longer than the payout's 1.5 s timeout: its retry meets 409 "in use".
      processingMaxMs: faultsOn
        ? faultPrng.chance(0.3)
          ? faultPrng.int(1600, 3000)
          : faultPrng.int(50, 400)
        : 50,
      slowRate: faultsOn ? faultPrng.float(0, 0.2) : 0,
      slowMs: 2500,
    },
    ...(faultsOn
      ? { lateRate: faultPrng.pick([0, 0.02, 0.05, 0.15]), statusLagMs: faultPrng.pick([0, 0, 1000, 4000]) }
      : {}),
  });
  // The payout's bank client and its AbortSignal.timeout must run on virtual time too.
  globalThis.fetch = bank.fetch;
  AbortSignal.timeout = (ms: number) => {
    const c = new AbortController();
    setTimeout(
      () => c.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
      ms,
    );
    return c.signal;
  };
  try {
    // A network that is sometimes slow: most frames in under a millisecond, some in tens.
    const net = root.fork("network");
    const slowNet = faultsOn ? faultPrng.pick([0, 0.01, 0.05]) : 0;
    nats = createSimNats({
      random: root.fork("nats").next,
      latencyMs: () => (net.chance(slowNet) ? net.int(5, 60) : net.int(0, 1)),
    });
    // A latency spike (a fork, a slow disk, a GC pause): each answer takes longer than a
    // lease, so an attempt pauses past it and another one takes the message over.
    let redisSlowUntil = 0;
    const redisLag = root.fork("redis-lag");
    redisSim = createSimRedis({
      delayMs: () => (Date.now() < redisSlowUntil ? redisLag.int(3500, 6000) : 0),
    });
    const redis: Redis = redisSim;
    // SIM_LOG_LEVEL=warn shows what the stages log, for a failing seed.
    const logger = createLogger({ service: "sim", level: process.env.SIM_LOG_LEVEL ?? "silent" });
    const connect = async (name: string) => {
      const nc = await drive(vt, (nats as SimNats).connect({ name }), {
        maxMs: 30_000,
        what: `${name} connect`,
      });
      connections.set(name, nc);
      return nc;
    };
    const env = { ...SETTINGS, ...(o.lingerMs ? { JETMESH_LINGER_MS: String(o.lingerMs) } : {}) };

    // The deploy step: streams, LEDGER included, and the buckets.
    const ops = await connect("ops");
    await drive(
      vt,
      jetstreamManager(ops).then((m) =>
        provisionStreams(m, { replicas: 1, logger, buckets: ["ledger-snapshots"] }),
      ),
      {
        maxMs: 60_000,
        what: "the deploy step",
      },
    );
    trace.add("deployed");

    const crashRate = faultsOn ? faultPrng.pick([0, 0.002, 0.01, 0.03]) : 0;
    const hook = (name: string) =>
      crashHook(root.fork(`crash-${name}`), crashRate, (p) => {
        crashes += 1;
        trace.add(`crash ${name} at ${p}`);
      });
    type Make = (nc: NatsConnection, crash: CrashHook, redis: Redis) => Promise<Running>;
    /** How each instance was started: a killed one is replaced by another made the same way. */
    const makers = new Map<string, Make>();
    /** Starts an instance: its own NATS and Redis connections, then the stage. Not driven: a fault's timer may call it. */
    const launch = async (name: string, make: Make) => {
      const nc = await (nats as SimNats).connect({ name });
      connections.set(name, nc);
      const own = (redisSim as SimRedis).duplicate() as unknown as SimRedis;
      instanceRedis.set(name, own);
      running.set(name, await make(nc, hook(name), own));
      trace.add(`${name} started`);
    };
    const startStage = async (name: string, make: Make) => {
      makers.set(name, make);
      await drive(vt, launch(name, make), { maxMs: 60_000, what: `${name} start` });
    };
    const stageHandle = (h: StageHandle): Running => ({ stop: () => h.stop() });
    const v = validatorConfig(env);
    const r = riskConfig(env);
    const l = ledgerConfig(env);
    const p = payoutConfig(env);
    const ledgers = faultsOn && faultPrng.chance(0.5) ? 2 : 1;
    const payouts = faultsOn && faultPrng.chance(0.3) ? 2 : 1;
    await startStage("validator", async (nc, crash, redis) =>
      stageHandle(
        await runStage({
          definition: validatorStage,
          deps: { rules: v.rules },
          nc,
          redis,
          logger,
          registry: new Registry(),
          settings: v.stage,
          crashHook: crash,
        }),
      ),
    );
    await startStage("risk", async (nc, crash, redis) =>
      stageHandle(
        await runStage({
          definition: riskStage,
          deps: { velocity: createVelocityStore(redis, r.velocity), thresholds: r.thresholds },
          nc,
          redis,
          logger,
          registry: new Registry(),
          settings: r.stage,
          crashHook: crash,
        }),
      ),
    );
    for (let i = 0; i < ledgers; i++)
      await startStage(`ledger-${i}`, async (nc, crash, redis) => {
        const h: LedgerHandle = startLedger({
          nc,
          redis,
          logger,
          registry: new Registry(),
          config: l,
          crashHook: crash,
        });
        await h.started;
        return { stop: () => h.stop() };
      });
    for (let i = 0; i < payouts; i++)
      await startStage(`payout-${i}`, async (nc, crash, redis) =>
        stageHandle(
          await runStage({
            definition: payoutStage,
            deps: {
              bank: createBankClient(p.bank),
              records: await openPayoutRecords(jetstream(nc), { bucket: p.recordsBucket, replicas: 1 }),
              bankRetentionMs: p.bank.retentionMs,
            },
            nc,
            redis,
            logger,
            registry: new Registry(),
            settings: p.stage,
            crashHook: crash,
          }),
        ),
      );

    // The gateway process, in `http` traffic: its API server (not listening: the clients'
    // connections are handed to it) and its status projection, a stage of its own.
    let gatewayNc: NatsConnection | undefined;
    /** How long a client may repeat a request (the gateway refuses older keys). */
    let horizonMs = 0;
    const accounts = Array.from({ length: o.accounts ?? 12 }, (_, i) => `acc-s${i}`);
    if (viaHttp) {
      const g = gatewayConfig({
        ...env,
        GATEWAY_CLIENTS_FILE: "(sim)",
        GATEWAY_ID_SECRETS_FILE: "(sim)",
        // Keys must be UUIDv7, as in production: their age is checked against the horizon.
        GATEWAY_ACCEPT_UNTIMED_KEYS: "false",
        // A repeat waits this long for its first request before 409 "in progress" (2 s in
        // production, where the first normally ends in milliseconds): short, so that a first
        // request slowed by a fault is met in flight more often.
        GATEWAY_IN_PROGRESS_WAIT_MS: "250",
      });
      horizonMs = g.gateway.idempotencyHorizonMs;
      await startStage("gateway-status", async (nc, crash, redis) =>
        stageHandle(
          await startStatusProjection(
            { nc, redis, logger, registry: new Registry(), config: g },
            { crashHook: crash },
          ),
        ),
      );
      gatewayNc = await connect("gateway");
      const nc = gatewayNc;
      const jsm = await drive(vt, jetstreamManager(nc), { maxMs: 30_000, what: "gateway's manager" });
      const own = (redisSim as SimRedis).duplicate() as unknown as SimRedis;
      instanceRedis.set("gateway", own);
      const { servers, lag } = createGatewayServers({
        nc,
        jsm,
        redis: own,
        logger,
        registry: new Registry(),
        config: g,
        clients: simClients(accounts),
        ids: parseIdSecrets(SIM_ID_SECRETS),
      });
      running.set("gateway", { stop: async () => lag.stop() });
      clients = new SimClients(servers.api, (line) => trace.add(line));
      trace.add("gateway started");
    }

    // Traffic: mints, then customer transfers at drawn times, some sent twice.
    const traffic = root.fork("traffic");
    const gateway = jetstream(gatewayNc ?? (await connect("gateway")));
    const accepted: AcceptedTransfer[] = [];
    // Requests spread over 20 s, or a burst of 2 s where decisions on one account crowd together.
    const windowMs = traffic.pick([20_000, 20_000, 2_000]);
    const requests: Array<{ at: number; env: AnyEnvelope; q: ClientRequest; copies: number }> = [];
    const request = (n: number, from: string, to: string, amountMinor: number, actor: string, at: number) => {
      const transferId = deriveId("sim", o.seed, String(n));
      const occurredAt = new Date(startMs + at).toISOString();
      const env = makeEnvelope(
        EventTypes.TransferRequested,
        { transferId, from, to, amountMinor, currency: "EUR", requestedAt: occurredAt },
        {
          eventId: deriveId("gateway", EventTypes.TransferRequested, transferId),
          correlationId: transferId,
          causationId: `idempotency-key:sim-${n}`,
          producer: "gateway",
          occurredAt,
          actor,
        },
      ) as AnyEnvelope;
      if (!viaHttp) accepted.push({ transferId, from, to });
      const q: ClientRequest = { client: actor, from, to, amountMinor };
      requests.push({ at, env, q, copies: faultsOn && traffic.chance(0.1) ? 2 : 1 });
    };
    // Some worlds run on tight money: balances near zero, where a stale decision overdraws.
    const mint = traffic.pick([100_000, 100_000, 30_000]);
    for (const [i, a] of accounts.entries()) request(i, "external", a, mint, SIM_MINTER, 0);
    for (let i = 0; i < (o.transfers ?? 200); i++) {
      const from = traffic.pick(accounts);
      const kind = traffic.int(0, 9);
      const to =
        kind < 6
          ? traffic.pick(accounts.filter((a) => a !== from))
          : kind < 9
            ? `bank:sim-${traffic.int(0, 3)}`
            : REFUSED;
      request(
        accounts.length + i,
        from,
        to,
        traffic.int(1, 30_000),
        SIM_CUSTOMER,
        1000 + traffic.int(0, windowMs),
      );
    }
    requests.sort((a, b) => a.at - b.at);

    /** Publishes as the gateway does: the same bytes until the stream answers (or says duplicate). */
    const publish = async (js: JetStreamClient, env: AnyEnvelope): Promise<PubAck> => {
      const h = natsHeaders();
      for (const [k, val] of Object.entries(eventHeaders(env))) h.set(k, val);
      for (let attempt = 1; attempt <= 20; attempt++) {
        try {
          return await js.publish(subjectFor(env.type, env.data.from), encodeEvent(env), {
            msgID: env.eventId,
            headers: h,
            timeout: 2000,
          });
        } catch {
          trace.add(`request ${env.data.transferId.slice(0, 8)} publish attempt ${attempt} failed; again`);
          await new Promise((res) => setTimeout(res, 200 * attempt));
        }
      }
      throw new Error(`request ${env.data.transferId} could not be published in 20 attempts`);
    };
    // A client's Idempotency-Key: a UUIDv7 of the virtual time it is first sent at.
    const keys = createPrng(`${o.seed}/keys`);
    const sent: Promise<unknown>[] = [];
    for (const q of requests)
      for (let c = 0; c < q.copies; c++) {
        if (!clients) {
          sent.push(
            new Promise<PubAck>((res, rej) =>
              setTimeout(() => publish(gateway, q.env).then(res, rej), q.at + c * traffic.int(0, 3000)),
            ),
          );
          continue;
        }
        // A repeat with the same key: half of them while the first may still be in flight
        // (409 "in progress", then again after Retry-After), half after its answer (200).
        const api = clients;
        const delay = c === 0 ? 0 : traffic.chance(0.5) ? traffic.int(0, 5) : traffic.int(5, 3000);
        sent.push(
          new Promise<void>((res, rej) =>
            setTimeout(() => {
              // A repeat waits until its first send made the key.
              const go = (): void => {
                if (c > 0 && q.q.key === undefined) setTimeout(go, 1);
                else api.send(q.q, keys).then(res, rej);
              };
              go();
            }, q.at + delay),
          ),
        );
      }

    // The fault schedule, drawn once.
    if (faultsOn) {
      const at = () => faultPrng.int(1000, windowMs + 2000);
      const schedule = (t: number, what: string, act: () => void, lastsMs = 0) => {
        faultsUntil = Math.max(faultsUntil, startMs + t + lastsMs + 6000);
        return setTimeout(() => {
          fault(what);
          act();
        }, t);
      };
      const n = nats;
      const rs = redisSim;
      if (faultPrng.chance(0.4)) {
        const k = faultPrng.int(1, 5);
        schedule(at(), `nats drops the next ${k} PubAcks`, () => n.dropPubAcks(k));
      }
      // Half the restarts are SIGKILLs: each durable comes back with its state file, which
      // misses the acks and deliveries of up to the last 100 ms, and one in four kills lands
      // while a durable rewrites its file, which is then empty (SERVER-BEHAVIOUR.md §8).
      // Drawn from their own generator (`kills`), so every other fault of a seed stays put.
      for (let k = faultPrng.pick([0, 1, 1, 2]); k > 0; k--) {
        const t = at();
        if (!kills.chance(0.5)) {
          schedule(t, "nats restarts", () => void n.restart());
          continue;
        }
        const torn = kills.chance(0.25);
        schedule(
          t,
          `nats killed (SIGKILL) and restarted${torn ? ", a consumer's state file torn" : ""}`,
          () => {
            void n
              .crash({ tear: torn ? (d) => (d.length ? kills.pick(d) : undefined) : undefined })
              .then((lost) => {
                for (const c of lost) traceCrash(c);
              });
          },
        );
      }
      if (faultPrng.chance(0.25))
        schedule(at(), "redis wiped", () => {
          redisLost = true;
          rs.wipe();
        });
      if (faultPrng.chance(0.25)) {
        const [t1, t2] = [at(), at()].sort((a, b) => a - b) as [number, number];
        let token: SimRedisSnapshot | undefined;
        schedule(t1, "redis snapshot taken", () => {
          token = rs.snapshot();
        });
        schedule(t2 + 1, "redis rolled back to the snapshot", () => {
          redisLost = true;
          if (token) rs.rollback(token);
        });
      }
      if (faultPrng.chance(0.3)) {
        const k = faultPrng.int(1, 40);
        schedule(at(), `redis loses its last ${k} writes`, () => {
          redisLost = true;
          rs.loseLastWrites(k);
        });
      }
      if (faultPrng.chance(0.2)) {
        const d = faultPrng.int(200, 4000);
        const t = at();
        schedule(t, `redis down for ${d} ms`, () => rs.setDown(true), d);
        setTimeout(() => rs.setDown(false), t + d);
      }
      if (faultPrng.chance(0.3)) {
        const d = faultPrng.int(200, 1500);
        schedule(
          at(),
          `redis answers in 3.5 to 6 s for ${d} ms`,
          () => {
            redisSlowUntil = Date.now() + d;
          },
          d,
        );
      }
      if (faultPrng.chance(0.15)) {
        const d = faultPrng.int(500, 5000);
        schedule(at(), `bank outage of ${d} ms`, () => bank.bank.startOutage(d), d);
      }
      // A process killed at an arbitrary moment, between any two of its awaits (a crash point
      // is one of a few named moments): from outside it goes silent at once, its connections
      // are cut, whatever it had not sent is lost, and a new instance takes its place.
      if (faultPrng.chance(0.3)) {
        const who = faultPrng.pick([...makers.keys()]);
        const again = `${who}-r`;
        schedule(
          at(),
          `${who} killed; ${again} starts in its place`,
          () => {
            n.freeze(who, FOREVER_MS);
            instanceRedis.get(who)?.freeze(FOREVER_MS);
            n.disconnect(who);
            running.delete(who);
            connections.delete(who);
            void launch(again, makers.get(who) as Make).catch((e: unknown) =>
              trace.add(`${again} did not start: ${e instanceof Error ? e.message : String(e)}`),
            );
          },
          5000,
        );
      }
      // A process stops (SIGSTOP, a GC pause, a VM migration) past its ack wait and its
      // lease: its NATS and Redis traffic is held both ways until it resumes, while the
      // broker redelivers and another attempt may take its messages over.
      if (faultPrng.chance(0.3)) {
        const who = faultPrng.pick([...instanceRedis.keys()]);
        const d = faultPrng.int(3500, 9000);
        schedule(
          at(),
          `${who} frozen for ${d} ms`,
          () => {
            n.freeze(who, d);
            instanceRedis.get(who)?.freeze(d);
          },
          d,
        );
      }
    }

    await drive(vt, Promise.all(sent), { stepMs: 20, maxMs: 10 * 60_000, what: "the requests" });
    trace.add(`${requests.length} requests stored`);

    // Quiet: every durable consumer done, three checks in a row. The observer is no part of
    // what is tested: a request of its own lost to a broker restart (seed sim-428: the
    // manager's first request, sent while ops reconnected, timed out) is tried again.
    const observer = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await jetstreamManager(ops);
        } catch (err) {
          if (attempt === 10) throw err;
          await new Promise((res) => setTimeout(res, 1000));
        }
      }
    };
    const jsm = await drive(vt, observer(), { maxMs: 90_000, what: "ops' manager" });
    const quiet = async () => {
      let calm = 0;
      let last: Awaited<ReturnType<typeof pipelineBacklog>> | undefined;
      for (let i = 0; i < 600 && calm < 3; i++) {
        // The observer's own requests may go unanswered while the broker restarts: not calm yet.
        last = await pipelineBacklog(jsm).catch(() => undefined);
        calm = last?.outstanding === 0 ? calm + 1 : 0;
        await new Promise((res) => setTimeout(res, 1000));
      }
      if (calm < 3)
        throw new Error(
          `the pipeline did not go quiet in 600 virtual seconds; still outstanding: ${JSON.stringify(last?.consumers)}`,
        );
    };
    // The checks read Redis and the bank: every fault is over first.
    if (vt.now() < faultsUntil) await vt.advance(faultsUntil - vt.now());
    await drive(vt, quiet(), { stepMs: 50, maxMs: 15 * 60_000, what: "quiet" });
    trace.add("quiet");

    const js = jetstream(ops);
    const read = async (stream: string, decode = true) =>
      readStoredEvents(js, stream, await streamPosition(jsm, stream), { decode });
    // Copies of transfers.requested the world re-published itself, as a faulty producer, by eventId.
    const directCopies = new Map<string, number>();
    /**
     * Requests sent again past every duplicate window. `direct` traffic publishes them into
     * INGRESS again. `http`: clients repeat them with their key (within the gateway's
     * horizon), which the gateway's records answer (200) without publishing; and a drawn half
     * is also published again straight into INGRESS as stored, a producer that repeats itself
     * (a gateway bug), so that the stages' guards past the window meet real duplicates.
     */
    const sendAgain = (again: typeof requests): Promise<unknown>[] => {
      const api = clients;
      if (!api) return again.map((q) => publish(gateway, q.env));
      const producer = createPrng(`${o.seed}/producer-repeats`);
      const direct = again.filter(() => producer.chance(0.5));
      const sends = again.map(async (q) => {
        const at = timeOfTimedId(q.q.key ?? "");
        if (at === undefined || Date.now() - at > horizonMs) {
          trace.add(`request ${q.q.key ?? "(unsent)"} not sent again: past the idempotency horizon`);
          return;
        }
        await api.send(q.q, keys);
      });
      const republish = (async () => {
        const stored = await read(StreamNames.Ingress);
        const byEvent = new Map(stored.flatMap((e) => (e.env ? [[e.env.eventId, e.env] as const] : [])));
        await Promise.all(
          direct.map(async (q) => {
            const eventId = api.eventIdOf(q.q);
            const env = eventId === undefined ? undefined : byEvent.get(eventId);
            if (!env || eventId === undefined) return;
            await publish(gateway, env);
            // Past the window of every earlier copy, the first attempt that reached the stream
            // stored one more (its retries are dropped against it).
            directCopies.set(eventId, (directCopies.get(eventId) ?? 0) + 1);
            trace.add(`request ${eventId.slice(0, 8)} published again into INGRESS`);
          }),
        );
      })();
      return [...sends, republish];
    };

    // The clock jumps past every stream's duplicate window, and clients send some requests
    // again: only the gateway's records, the stages' guards (and the ledger's log) stand
    // between them and a second run.
    if (faultsOn && faultPrng.chance(0.25)) {
      const window = Math.max(...Object.values(Streams).map((d) => d.duplicateWindowMs));
      await vt.jump(window + 60_000);
      fault(`clock jumps ${Math.round((window + 60_000) / 60_000)} min`);
      const again = faultPrng.shuffle(requests).slice(0, faultPrng.int(5, 20));
      // Sometimes the broker is SIGKILLed while those run, mid-write of a durable's file: that
      // durable delivers its whole stream again, every message now past its duplicate window,
      // and only the stages' guards stand between it and a second run. Within 1.5 s, before
      // the world can be quiet again (three calm checks 1 s apart).
      const n = nats;
      if (n && kills.chance(0.3))
        setTimeout(
          () => {
            fault("nats killed (SIGKILL) and restarted, a consumer's state file torn");
            void n.crash({ tear: (d) => (d.length ? kills.pick(d) : undefined) }).then((lost) => {
              for (const c of lost) traceCrash(c);
            });
          },
          kills.int(0, 1500),
        );
      await drive(vt, Promise.all(sendAgain(again)), {
        stepMs: 20,
        maxMs: 5 * 60_000,
        what: "the requests sent again",
      });
      trace.add(`${again.length} requests sent again past the duplicate window`);
      await drive(vt, quiet(), { stepMs: 50, maxMs: 15 * 60_000, what: "quiet again" });
      trace.add("quiet again");
    }

    const report = await drive(
      vt,
      checkInvariants({
        nc: ops,
        accepted: clients ? clients.accepted() : accepted,
        balances: redisBalances(redis),
        only: ["I1", "I2", "I3", "I4", "I6", "S1", "M1"],
        minters: [SIM_MINTER],
        projectionSettleMs: 15_000,
      }),
      { stepMs: 50, maxMs: 5 * 60_000, what: "the invariant check" },
    );
    const [ledger, payoutsRead, dlq] = await drive(
      vt,
      Promise.all([read(StreamNames.Ledger), read(StreamNames.Payouts), read(StreamNames.Dlq, false)]),
      { maxMs: 60_000, what: "reading the log" },
    );
    const hops = await drive(
      vt,
      Promise.all([StreamNames.Validation, StreamNames.Risk].map((st) => read(st))),
      { maxMs: 60_000, what: "reading the hops" },
    );
    const once = hopsOnce([...hops.flat(), ...ledger, ...payoutsRead], { storedOnce: !redisLost });
    const keysOnce = clients
      ? [
          ...clients.violations(),
          ...requestsOnce(
            await drive(vt, read(StreamNames.Ingress), { maxMs: 60_000, what: "reading INGRESS" }),
            {
              answered: clients.answered(),
              direct: directCopies,
              storedOnce: !redisLost,
              windowMs: Streams[StreamNames.Ingress].duplicateWindowMs,
            },
          ),
        ]
      : [];
    const bankReport = checkBankRecord({
      ledger,
      payouts: payoutsRead,
      dlq,
      bank: { payouts: bank.bank.payouts(), refusals: bank.bank.refusals() },
      maxViolations: 20,
    });
    const violations = [
      ...report.violations.map((x) => `${x.invariant} ${x.message}`),
      ...bankReport.violations.map((x) => `${x.invariant} ${x.message}`),
      ...once,
      ...keysOnce,
    ];
    const c = report.counts;
    return {
      seed: o.seed,
      ok: violations.length === 0,
      violations,
      faults,
      trace: trace.lines(),
      counts: {
        accepted: (clients ? clients.accepted() : accepted).length,
        posted: c.posted,
        reversed: c.reversed,
        declined: c.declined,
        rejected: c.rejected,
        paid: bank.bank.payouts().length,
        crashes,
        bank409: bank.bank.stats().conflictsInProgress,
        ledgerConflicts: 0,
        inProgress409: clients?.counts().inProgress ?? 0,
        replayed200: clients?.counts().replayed ?? 0,
      },
      virtualMs: vt.now() - startMs,
      realMs: realMs(),
    };
  } catch (err) {
    return {
      seed: o.seed,
      ok: false,
      violations: [`world failed: ${err instanceof Error ? err.message : String(err)}`],
      faults,
      trace: trace.lines(),
      counts: {
        accepted: 0,
        posted: 0,
        reversed: 0,
        declined: 0,
        rejected: 0,
        paid: 0,
        crashes,
        bank409: bank.bank.stats().conflictsInProgress,
        ledgerConflicts: 0,
        inProgress409: clients?.counts().inProgress ?? 0,
        replayed200: clients?.counts().replayed ?? 0,
      },
      virtualMs: vt.now() - startMs,
      realMs: realMs(),
    };
  } finally {
    // Everything stops on virtual time, so that nothing is left to re-arm real timers later.
    for (const r of [...running.values()].reverse())
      await drive(vt, r.stop(), { maxMs: 30_000, what: "stop" }).catch(() => {});
    for (const nc of connections.values())
      await drive(vt, nc.close(), { maxMs: 10_000, what: "close" }).catch(() => {});
    nats?.close();
    for (const c of instanceRedis.values()) c.disconnect();
    redisSim?.disconnect();
    await vt.advance(1000);
    bank.close();
    globalThis.fetch = realFetch;
    AbortSignal.timeout = realTimeout;
    restoreRandom();
    vt.uninstall();
  }
}
