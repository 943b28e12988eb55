import { StreamNames } from "@jetmesh/contracts";
import {
  type BankInvariantName,
  BankInvariants,
  type BankRecordCounts,
  type BankViolation,
  checkBankRecord,
  checkInvariants,
  gatewayBalances,
  type InvariantName,
  Invariants,
  readBankRecord,
  readStoredEvents,
  streamPosition,
  type Violation,
} from "@jetmesh/testkit";
import { waitForQuiet } from "@jetmesh/mesh";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { ServiceName } from "@jetmesh/mesh";
import {
  type ChaosEnv,
  type ChaosEnvOptions,
  type StageService,
  startChaosEnv,
  type UnplannedExit,
} from "./environment.ts";
import {
  drainMs,
  type Monitor,
  type PipelineSample,
  progressMs,
  type RssStats,
  startMonitor,
} from "./monitor.ts";
import { createPrng } from "@jetmesh/testkit";
import { percentile } from "@jetmesh/tools";
import { type FaultAction, type Injected, pause, type Reach, type Scenario } from "./scenario.ts";
import { startTraffic, type TrafficStats } from "./traffic.ts";
import { listFindings } from "@jetmesh/ops";

/**
 * Runs one scenario end to end: draws the fault plan, starts the environment, sends steady
 * traffic, injects the plan on schedule, stops the traffic (every key retried until its
 * answer is certain), waits for the pipeline to go quiet, checks I1 to I6 and stops every
 * process it started, whatever happened.
 */

/**
 * Protocol settings of every service in a chaos run: redeliveries within seconds rather
 * than the production half-minute, so a run drains in seconds, and a redelivery horizon
 * (29 × max(ack wait, lease, an attempt of 3.2 + 2 + 15 + 2 s) ≈ 10.7 minutes with 30
 * deliveries) far longer than any fault. The runtime's settings check still applies: it
 * refuses any combination that would break exactly-once.
 */
export const CHAOS_SETTINGS: Readonly<Record<string, string>> = {
  JETMESH_ACK_WAIT_MS: "4000",
  JETMESH_MAX_DELIVER: "30",
  JETMESH_RETRY_BASE_MS: "100",
  JETMESH_RETRY_MAX_MS: "2000",
  JETMESH_PUBLISH_TIMEOUT_MS: "2000",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "15000",
  JETMESH_DRAIN_TIMEOUT_MS: "2000",
  GATEWAY_LAG_POLL_MS: "250",
};

/** Options of {@link runScenario}. */
export interface RunScenarioOptions {
  readonly scenario: Scenario;
  /** The run's seed; the scenario's PRNG is seeded with `<seed>/<scenario name>`. */
  readonly seed: string;
  /** Length of the fault phase (traffic runs through it). */
  readonly durationMs: number;
  /** New transfers per second. */
  readonly rate: number;
  readonly accounts?: number;
  /** Traffic before the first fault (default 3 s). */
  readonly warmupMs?: number;
  /** How long the pipeline may take to go quiet after the traffic (default 240 s). */
  readonly quietTimeoutMs?: number;
  /** How long open reconciler findings may take to close after quiet (default 120 s: a bank check round and a grace). */
  readonly findingsTimeoutMs?: number;
  /** Largest resident memory any process may reach (default 768 MiB). */
  readonly rssLimitMb?: number;
  /** Environment of every service, over {@link CHAOS_SETTINGS} (ignored with `env`). */
  readonly serviceEnv?: Readonly<Record<string, string>>;
  /**
   * Run in this environment instead of starting one; it is left running. It must have
   * been started with {@link envOptionsFor} of this scenario (or of a set including it).
   */
  readonly env?: ChaosEnv;
  readonly logLevel?: string;
  /** A service dying on its own fails the run (by default it is restarted and reported as a warning). */
  readonly failOnCrash?: boolean;
  /** Keep the scratch folder (logs, store) for a post-mortem. */
  readonly keepData?: boolean;
  readonly log?: (line: string) => void;
  /** Aborting ends the fault phase early; the run still drains, checks and stops. */
  readonly signal?: AbortSignal;
  /** Told the environment once it runs (the CLI keeps it to stop it on a second Ctrl-C). */
  readonly onEnv?: (env: ChaosEnv | undefined) => void;
}

/** One injected fault as it happened. */
export interface FaultRecord {
  readonly action: FaultAction;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly detail: string;
  /** From the end of the fault until every stage of the money path moved again (or had nothing to do). */
  readonly progressMs?: number;
  /** From the end of the fault until the money path's backlog was at most the threshold. */
  readonly drainMs?: number;
  /** How hard this fault hit (see {@link Reach}). */
  readonly reach?: Reach;
  readonly error?: string;
}

/** The checks a chaos run makes: I1 to I6, S1 and M1 from the streams, B1 to B5 against the bank's record. */
export type CheckName = InvariantName | BankInvariantName;
/** A violation of either checker. */
export type ChaosViolation = Violation | BankViolation;

/** The result of one scenario. */
export interface ScenarioResult {
  readonly scenario: string;
  readonly title: string;
  readonly seed: string;
  readonly durationMs: number;
  readonly rate: number;
  /** No violation, no idempotency mismatch, memory under the limit, nothing failed to run. */
  readonly ok: boolean;
  /** Why `ok` is false. */
  readonly problems: readonly string[];
  /** Notable but not failing: services that died on their own, odd answers. */
  readonly warnings: readonly string[];
  readonly plan: readonly FaultAction[];
  readonly faults: readonly FaultRecord[];
  /** Faults injected per kind; `duplicate-copy` counts the extra copies of requests. */
  readonly faultCounts: Readonly<Record<string, number>>;
  readonly traffic: TrafficStats;
  readonly accepted: number;
  readonly outcomes: Readonly<Record<"posted" | "reversed" | "declined" | "rejected", number>>;
  readonly lost: number;
  readonly doubled: number;
  readonly dlq: number;
  readonly invariantsChecked: readonly CheckName[];
  readonly violationCounts: Readonly<Record<CheckName, number>>;
  /** Up to 50 violations, with transfer ids and events. */
  readonly violations: readonly ChaosViolation[];
  /** Discrepancies the reconciler left open at the end; absent when the mesh ran none. */
  readonly openDiscrepancies?: number;
  /** The faults' reach summed per name, with the scenario's final measure. */
  readonly reach: Reach;
  /** What each reach name counts (the scenario's notes). */
  readonly reachNotes: Readonly<Record<string, string>>;
  /** The bank's record against the log (absent when it could not be read). */
  readonly bank?: BankRecordCounts;
  /** The longest time from a fault's end until every stage moved again. */
  readonly longestProgressMs?: number;
  /** The longest time from a fault's end until the backlog drained (later faults may overlap it). */
  readonly longestDrainMs?: number;
  /** Faults after which the stages never all moved again before the pipeline went quiet. */
  readonly unrecovered: number;
  /** Backlog (messages) at or under which the money path counts as drained. */
  readonly drainThreshold: number;
  /** The largest backlog of the gateway's status projection (a read model). */
  readonly maxStatusLag: number;
  readonly rss: readonly RssStats[];
  /** The pipeline's backlog over the run, at most one sample a second (for the JSON report). */
  readonly backlog: readonly PipelineSample[];
  readonly unplannedExits: readonly UnplannedExit[];
  readonly timings: { readonly totalMs: number; readonly drainMs: number };
  readonly dataDir?: string;
}

const NO_VIOLATIONS = Object.fromEntries(
  [...Object.keys(Invariants), ...Object.keys(BankInvariants)].map((name) => [name, 0]),
) as Record<CheckName, number>;

/** The scenario's own PRNG: the same for `--scenario all` and `--scenario <name>`. */
export function scenarioPrng(seed: string, scenario: Scenario) {
  return createPrng(`${seed}/${scenario.name}`);
}

/** The fault plan a seed and duration give; what `runScenario` will inject. */
export function planOf(scenario: Scenario, seed: string, durationMs: number): FaultAction[] {
  return scenario.plan(scenarioPrng(seed, scenario).fork("faults"), durationMs);
}

/**
 * Options that start an environment fit for every scenario in `scenarios`: the cluster
 * topology if one needs it, proxies if one needs them, and every scenario's environment
 * merged over {@link CHAOS_SETTINGS} and `serviceEnv`.
 * @throws when the scenarios need different topologies.
 */
export function envOptionsFor(
  scenarios: readonly Scenario[],
  serviceEnv: Readonly<Record<string, string>> = {},
): Pick<ChaosEnvOptions, "topology" | "proxies" | "env" | "serviceEnv" | "instances" | "bankLink"> {
  const topologies = new Set(scenarios.map((s) => s.env?.topology ?? "single"));
  if (topologies.size > 1)
    throw new Error(`scenarios ${scenarios.map((s) => s.name).join(", ")} need different topologies`);
  const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
  const instances: Partial<Record<StageService, number>> = {};
  for (const s of scenarios) {
    for (const [name, vars] of Object.entries(s.env?.serviceEnv ?? {}))
      perService[name as ServiceName] = { ...perService[name as ServiceName], ...vars };
    for (const [name, n] of Object.entries(s.env?.instances ?? {}))
      instances[name as StageService] = Math.max(instances[name as StageService] ?? 1, n ?? 1);
  }
  return {
    topology: [...topologies][0] ?? "single",
    proxies: scenarios.some((s) => s.env?.proxies),
    env: Object.assign({}, CHAOS_SETTINGS, ...scenarios.map((s) => s.env?.env ?? {}), serviceEnv),
    serviceEnv: perService,
    instances,
    bankLink: scenarios.some((s) => s.env?.bankLink),
  };
}

function incompatibility(s: Scenario, env: ChaosEnv): string | undefined {
  const cluster = s.env?.topology === "cluster";
  if (cluster !== (env.cluster !== undefined))
    return cluster ? "it needs a cluster" : "it needs a single nats-server";
  if (s.env?.proxies && env.proxies.size === 0) return "it needs the fault proxies";
  if (s.env?.bankLink && !env.bankLink) return "it needs the bank link";
  for (const [name, n] of Object.entries(s.env?.instances ?? {}))
    if (env.instances(name as StageService).length < (n ?? 1)) return `it needs ${n} instances of ${name}`;
  return undefined;
}

export async function runScenario(o: RunScenarioOptions): Promise<ScenarioResult> {
  const s = o.scenario;
  const log = o.log ?? (() => {});
  const signal = o.signal ?? new AbortController().signal;
  const started = Date.now();
  const prng = scenarioPrng(o.seed, s);
  const plan = s.plan(prng.fork("faults"), o.durationMs);
  const trafficPrng = prng.fork("traffic");
  const problems: string[] = [];
  const warnings: string[] = [];
  const faults: FaultRecord[] = [];
  let env: ChaosEnv | undefined;
  let nc: NatsConnection | undefined;
  let monitor: Monitor | undefined;
  let trafficStats: TrafficStats | undefined;
  let quietInMs = 0;
  let inv: Awaited<ReturnType<typeof checkInvariants>> | undefined;
  let bank: ReturnType<typeof checkBankRecord> | undefined;
  /** Findings the reconciler left open at the end (undefined without a reconciler). */
  let openDiscrepancies: number | undefined;
  const reaches: Promise<void>[] = [];
  const reach: Record<string, number> = {};
  const addReach = (r: Reach) => {
    for (const [k, v] of Object.entries(r)) reach[k] = (reach[k] ?? 0) + v;
  };
  let accepted = 0;
  let threshold = 0;
  let trafficEndMs = Number.POSITIVE_INFINITY;
  try {
    if (o.env) {
      const why = incompatibility(s, o.env);
      if (why) throw new Error(`scenario ${s.name} cannot run in the given environment: ${why}`);
      env = o.env;
    } else {
      const options = envOptionsFor([s], o.serviceEnv ?? {});
      env = await startChaosEnv({
        ...options,
        // The bank's own draws (processing time, slow answers) follow the run's seed too.
        serviceEnv: {
          ...options.serviceEnv,
          "bank-sim": { BANK_SEED: `${o.seed}/${s.name}`, ...options.serviceEnv?.["bank-sim"] },
        },
        logLevel: o.logLevel ?? "warn",
        removeDataOnStop: !o.keepData,
        onStatus: (line) => log(`  ${line}`),
      });
      o.onEnv?.(env);
      log(`  mesh up in ${((Date.now() - started) / 1000).toFixed(1)} s (data ${env.dataDir})`);
    }
    nc = await connect({
      servers: env.natsUrl.split(","),
      name: "chaos-runner",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    const jsm = await jetstreamManager(nc, { timeout: 3000 });
    const liveEnv = env;
    monitor = startMonitor({ jsm, processes: () => liveEnv.processes() });
    const accounts = o.accounts ?? 20;
    const traffic = startTraffic({
      gatewayUrl: env.gatewayUrl,
      apiKeys: env.mesh.apiKeys,
      prng: trafficPrng,
      rate: o.rate,
      runId: `chaos-${o.seed}-${s.name}`,
      accounts,
      refusedBankAccounts: env.refusedBankAccounts,
      storm: s.storm ?? false,
      ...s.traffic,
    });
    try {
      await pause(o.warmupMs ?? 3000, signal);
      const warm = monitor.samples().map((x) => x.outstanding);
      threshold = Math.max(10, Math.ceil(o.rate), 2 * percentile(Float64Array.from(warm).sort(), 0.9));
      const t0 = Date.now();
      const settling = new Map<string, Promise<void>>();
      for (const a of plan) {
        if (signal.aborted) break;
        await pause(t0 + a.atMs - Date.now(), signal);
        if (signal.aborted) break;
        await settling.get(a.target);
        const startedAtMs = Date.now();
        log(
          `  fault ${a.id}/${plan.length} at +${((startedAtMs - t0) / 1000).toFixed(1)}s: ${a.kind} ${a.target}`,
        );
        try {
          const done: Injected = await s.inject(a, { env, jsm, log, signal });
          const record: FaultRecord = {
            action: a,
            startedAtMs,
            endedAtMs: done.endedAtMs,
            detail: done.detail,
          };
          faults.push(record);
          if (done.later) {
            const index = faults.length - 1;
            reaches.push(
              done.later.then(
                (more) => {
                  const f = faults[index] as FaultRecord;
                  faults[index] = { ...f, detail: `${f.detail}; ${more}` };
                },
                () => {},
              ),
            );
          }
          if (done.reach) {
            const index = faults.length - 1;
            reaches.push(
              Promise.resolve(done.reach).then(
                (r) => {
                  faults[index] = { ...(faults[index] as FaultRecord), reach: r };
                  addReach(r);
                },
                (err: unknown) => {
                  problems.push(`fault ${a.id} (${a.kind} ${a.target}): reach not measured: ${message(err)}`);
                },
              ),
            );
          }
          if (done.settle) {
            const target = a.target;
            const p = done.settle.catch((err: unknown) => {
              problems.push(`fault ${a.id} (${a.kind} ${target}) did not settle: ${message(err)}`);
            });
            settling.set(target, p);
          }
        } catch (err) {
          problems.push(`fault ${a.id} (${a.kind} ${a.target}) failed: ${message(err)}`);
          faults.push({ action: a, startedAtMs, endedAtMs: Date.now(), detail: "", error: message(err) });
        }
      }
      await pause(t0 + o.durationMs - Date.now(), signal);
      await Promise.all(settling.values());
      await Promise.all(reaches);
    } finally {
      log("  traffic: stopping; every open request retried until its answer is certain");
      trafficEndMs = Date.now();
      trafficStats = await traffic.stop();
    }
    accepted = traffic.accepted().length;

    const drainStart = Date.now();
    log("  waiting for every service to be ready and the pipeline to go quiet");
    for (const svc of Object.values(env.mesh.services)) {
      await svc.waitReady(90_000).catch((err: unknown) => {
        problems.push(`${svc.name} not ready after the faults: ${message(err).split("\n")[0]}`);
      });
    }
    await waitQuiet(jsm, o.quietTimeoutMs ?? 240_000).catch((err: unknown) => {
      problems.push(message(err));
    });
    quietInMs = Date.now() - drainStart;
    log(
      `  quiet after ${(quietInMs / 1000).toFixed(1)} s; checking I1-I6, S1 and M1 from the streams and the gateway's balances, B1-B5 against the bank's record`,
    );
    const check = () =>
      checkInvariants({
        nc: nc as NatsConnection,
        accepted: traffic.accepted(),
        balances: gatewayBalances((env as ChaosEnv).gatewayUrl, {
          apiKey: (env as ChaosEnv).mesh.apiKeys.operator,
        }),
        accounts: Array.from({ length: accounts }, (_, i) => `acc-${i}`),
        minters: (env as ChaosEnv).mesh.minters,
        maxViolations: 500,
      });
    // The checker throws only when it cannot read (an API timeout): read again, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        inv = await check();
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
        log(`  checker could not read (${message(err)}); reading again`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    if (!inv.ok) problems.push(`invariants broken: ${summariseViolations(inv.violationCounts)}`);
    bank = await checkBank(nc, env.bankUrl).catch((err: unknown) => {
      problems.push(`the bank's record could not be checked: ${message(err)}`);
      return undefined;
    });
    if (bank && !bank.ok) problems.push(`bank record broken: ${summariseViolations(bank.violationCounts)}`);
    // The reconciler (a catalog service, running in the mesh) must end with nothing open: a
    // finding opened during the faults closes once its cause resolved, at its next check.
    if (env.mesh.services.reconciler) {
      const deadline = Date.now() + (o.findingsTimeoutMs ?? 120_000);
      const openFindings = async () =>
        (await listFindings(jetstream(nc as NatsConnection), jsm, { open: true })).findings;
      let open = await openFindings();
      while (open.length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2000));
        open = await openFindings();
      }
      openDiscrepancies = open.length;
      log(`  reconciler: ${open.length} open discrepancies`);
      if (open.length)
        problems.push(
          `the reconciler has ${open.length} open discrepancies: ${open
            .slice(0, 5)
            .map((f) => `${f.kind} ${f.key}`)
            .join("; ")}`,
        );
    }
    if (s.measure) {
      const liveEnv = env;
      addReach(
        await s.measure({ env: liveEnv, jsm, log }).catch((err: unknown) => {
          problems.push(`reach not measured: ${message(err)}`);
          return {};
        }),
      );
    }
  } catch (err) {
    problems.push(`run failed: ${message(err)}`);
  } finally {
    await monitor?.stop();
    await nc?.close().catch(() => {});
    if (!o.env) {
      await env?.stop();
      o.onEnv?.(undefined);
    }
  }

  const samples = monitor?.samples() ?? [];
  const recorded = faults.map((f): FaultRecord => {
    if (f.error) return f;
    const p = progressMs(samples, f.endedAtMs, trafficEndMs, f.action.affects);
    const d = drainMs(samples, f.endedAtMs, threshold);
    return {
      ...f,
      ...(p === undefined ? {} : { progressMs: p }),
      ...(d === undefined ? {} : { drainMs: d }),
    };
  });
  const longest = (pick: (f: FaultRecord) => number | undefined) => {
    const xs = recorded.flatMap((f) => (pick(f) === undefined ? [] : [pick(f) as number]));
    return xs.length ? Math.max(...xs) : undefined;
  };
  const longestProgress = longest((f) => f.progressMs);
  const longestDrain = longest((f) => f.drainMs);
  const unrecovered = recorded.filter((f) => !f.error && f.progressMs === undefined).length;
  const traffic = trafficStats ?? emptyStats();
  const faultCounts: Record<string, number> = {};
  for (const f of recorded) if (!f.error) faultCounts[f.action.kind] = (faultCounts[f.action.kind] ?? 0) + 1;
  const copies = Object.values(traffic.copies).reduce((a, b) => a + b, 0);
  if (copies > 0) faultCounts["duplicate-copy"] = copies;

  const rss = monitor?.rss() ?? [];
  const limit = o.rssLimitMb ?? 768;
  for (const r of rss) {
    if (r.maxMb > limit) problems.push(`${r.name} reached ${r.maxMb.toFixed(0)} MiB RSS (limit ${limit})`);
  }
  if (traffic.mismatched.length)
    problems.push(
      `gateway answered different transfers for one key: ${traffic.mismatched.slice(0, 5).join("; ")}`,
    );
  if (trafficStats && !signal.aborted) problems.push(...(s.check?.(trafficStats, reach) ?? []));
  for (const k of s.kinds) {
    if (!faultCounts[k] && !signal.aborted) problems.push(`no ${k} fault was injected`);
  }
  const exits = (env?.unplannedExits() ?? []).filter((e) => e.atMs >= started);
  for (const e of exits) {
    const line = `${e.service} exited on its own at ${new Date(e.atMs).toISOString()} (code ${e.code}, signal ${e.signal}) and was restarted; log tail: ${e.tail.split("\n").filter(Boolean).slice(-3).join(" | ").slice(0, 400)}`;
    (o.failOnCrash ? problems : warnings).push(line);
  }
  const unexpected = [...traffic.unexpected, ...traffic.invalid.unexpected];
  if (unexpected.length)
    warnings.push(`${unexpected.length} unexpected answers: ${unexpected.slice(0, 5).join("; ")}`);
  if (traffic.givenUp.length)
    warnings.push(
      `${traffic.givenUp.length} keys never got a final answer: ${traffic.givenUp.slice(0, 5).join("; ")}`,
    );
  if (unrecovered)
    warnings.push(
      `${unrecovered} fault(s) after which the stages did not all move again before the pipeline went quiet`,
    );

  const doubledIds = new Set<string>();
  for (const v of inv?.violations ?? [])
    if (v.invariant === "I2" && v.transferId) doubledIds.add(v.transferId);
  for (const t of inv?.transfers.values() ?? []) if (t.outcome === "multiple") doubledIds.add(t.transferId);
  for (const v of bank?.violations ?? [])
    if (v.invariant === "B1" && v.transferId) doubledIds.add(v.transferId);
  const violations: ChaosViolation[] = [...(inv?.violations ?? []), ...(bank?.violations ?? [])];

  return {
    scenario: s.name,
    title: s.title,
    seed: o.seed,
    durationMs: o.durationMs,
    rate: o.rate,
    ok: problems.length === 0,
    problems,
    warnings,
    plan,
    faults: recorded,
    faultCounts,
    traffic,
    accepted,
    outcomes: {
      posted: inv?.counts.posted ?? 0,
      reversed: inv?.counts.reversed ?? 0,
      declined: inv?.counts.declined ?? 0,
      rejected: inv?.counts.rejected ?? 0,
    },
    lost: inv?.counts.lost ?? 0,
    doubled: doubledIds.size,
    dlq: inv?.counts.dlq ?? 0,
    invariantsChecked: [...(inv?.checked ?? []), ...(bank?.checked ?? [])],
    violationCounts: { ...NO_VIOLATIONS, ...inv?.violationCounts, ...bank?.violationCounts },
    violations: violations.slice(0, 50),
    reach,
    reachNotes: s.reachNotes ?? {},
    ...(openDiscrepancies !== undefined ? { openDiscrepancies } : {}),
    ...(bank ? { bank: bank.counts } : {}),
    ...(longestProgress === undefined ? {} : { longestProgressMs: longestProgress }),
    ...(longestDrain === undefined ? {} : { longestDrainMs: longestDrain }),
    unrecovered,
    drainThreshold: threshold,
    maxStatusLag: Math.max(0, ...samples.map((x) => x.statusLag)),
    rss,
    backlog: thin(samples, 1000),
    unplannedExits: exits,
    timings: { totalMs: Date.now() - started, drainMs: quietInMs },
    ...(o.keepData && env ? { dataDir: env.dataDir } : {}),
  };
}

/**
 * The bank's own record (bank-sim's admin API) against LEDGER, PAYOUTS and the DLQ as
 * stored now; call once the pipeline is quiet.
 */
async function checkBank(nc: NatsConnection, bankUrl: string): Promise<ReturnType<typeof checkBankRecord>> {
  const jsm = await jetstreamManager(nc, { timeout: 5000 });
  const js = jetstream(nc);
  const read = async (stream: string, decode = true) =>
    readStoredEvents(js, stream, await streamPosition(jsm, stream), { decode });
  const [ledger, payouts, dlq, record] = await Promise.all([
    read(StreamNames.Ledger),
    read(StreamNames.Payouts),
    read(StreamNames.Dlq, false),
    readBankRecord(bankUrl),
  ]);
  return checkBankRecord({ ledger, payouts, dlq, bank: record, maxViolations: 100 });
}

function summariseViolations(counts: Readonly<Partial<Record<CheckName, number>>>): string {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([i, n]) => `${i}×${n}`)
    .join(", ");
}

/**
 * The mesh's waitForQuiet, going on through failed reads: right after a broker fault a
 * JetStream API call may time out, which says nothing about the pipeline being quiet.
 * @throws when the pipeline is not quiet by the deadline.
 */
async function waitQuiet(jsm: JetStreamManager, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await waitForQuiet(jsm, { timeoutMs: Math.max(1000, deadline - Date.now()), stablePolls: 4 });
      return;
    } catch (err) {
      if (message(err).startsWith("pipeline not quiet")) throw err;
      last = err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`pipeline not quiet after ${timeoutMs} ms (last read failed: ${message(last)})`);
}

/** At most one sample per `everyMs`. */
function thin(samples: readonly PipelineSample[], everyMs: number): PipelineSample[] {
  const out: PipelineSample[] = [];
  for (const x of samples)
    if (!out.length || x.atMs - (out.at(-1) as PipelineSample).atMs >= everyMs) out.push(x);
  return out;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function emptyStats(): TrafficStats {
  return {
    transfers: 0,
    requests: 0,
    byStatus: {},
    errors: {},
    retryAfter503: 0,
    shed: 0,
    shedWithoutRetryAfter: 0,
    retries: 0,
    copies: { single: 0, sequential: 0, concurrent: 0, "pair-then-one": 0 },
    acceptedByKind: {},
    invalid: { sent: 0, answered400: 0, unexpected: [] },
    mismatched: [],
    givenUp: [],
    unexpected: [],
    funding: 0,
    startedAtMs: 0,
    finishedAtMs: 0,
  };
}
