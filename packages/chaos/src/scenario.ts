import type { JetStreamManager } from "@nats-io/jetstream";
import type { ChaosEnv, ChaosEnvOptions } from "./environment.ts";
import type { Prng } from "@jetmesh/testkit";
import type { ChaosTrafficOptions, TrafficStats } from "./traffic.ts";

/**
 * What a scenario is: how to set the mesh up, a fault plan drawn from the PRNG before
 * anything runs (so it can be printed and replayed), and how to inject one planned fault.
 */

/** One planned fault; times are relative to the start of the fault phase. */
export interface FaultAction {
  /** 1-based position in the plan. */
  readonly id: number;
  readonly atMs: number;
  /** E.g. `kill-service`, `nats-kill`, `net-hold`; the report counts faults by kind. */
  readonly kind: string;
  /** What is hit: a service, `nats-server`, `redis`, `gateway→nats`, a stream's leader. */
  readonly target: string;
  /** How long the fault lasts before it is undone (0 for an instant fault like a cut). */
  readonly holdMs: number;
  /**
   * Stages of the money path the fault stops (gateway, validator, risk, ledger, payout),
   * whose moving again ends its recovery; every stage when absent (broker or Redis faults).
   */
  readonly affects?: readonly string[];
  /** Further drawn parameters (latency peak, which follower), shown in the schedule. */
  readonly params?: Readonly<Record<string, number | string>>;
}

/** What the runner hands a scenario while it injects. */
export interface ScenarioContext {
  readonly env: ChaosEnv;
  readonly jsm: JetStreamManager;
  readonly log: (line: string) => void;
  /** Aborted on SIGINT: long waits inside an injection should end early. */
  readonly signal: AbortSignal;
}

/**
 * How hard a fault hit, in numbers that say it did what it is for: decisions a rollback
 * erased, messages another instance took over, 409s the bank answered. Summed per name
 * over a scenario's faults and its final measure.
 */
export type Reach = Readonly<Record<string, number>>;

/** What the runner hands a scenario's final measure, once the pipeline is quiet. */
export interface MeasureContext {
  readonly env: ChaosEnv;
  readonly jsm: JetStreamManager;
  readonly log: (line: string) => void;
}

/** The outcome of injecting one fault. */
export interface Injected {
  /** When the fault was undone (the restart issued, SIGCONT sent, the proxy reset). */
  readonly endedAtMs: number;
  /** What really happened (e.g. which node led the stream). */
  readonly detail: string;
  /**
   * Work that continues after the fault ended (a restarted service getting ready); the
   * runner waits for it before the next fault on the same target and at the end.
   */
  readonly settle?: Promise<void>;
  /**
   * This fault's reach, or a promise of it when it can only be read later (after a resumed
   * process finished its stale attempts); the runner awaits it after the fault phase.
   */
  readonly reach?: Reach | Promise<Reach>;
  /** What became known after the fault (where a consumer resumed), appended to its detail. */
  readonly later?: Promise<string>;
}

/** A chaos scenario. */
export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** Fault kinds the plan always contains (the tests check each happened). */
  readonly kinds: readonly string[];
  /** How the environment differs from the default single-server one. */
  readonly env?: Partial<Pick<ChaosEnvOptions, "topology" | "proxies" | "instances" | "bankLink">> & {
    readonly serviceEnv?: ChaosEnvOptions["serviceEnv"];
    readonly env?: Readonly<Record<string, string>>;
  };
  /** Every request sent three times (the duplicate storm). */
  readonly storm?: boolean;
  /** Shares of the traffic's kinds, when the scenario needs more of one (payouts to the bank). */
  readonly traffic?: Pick<ChaosTrafficOptions, "payoutShare" | "refusedShare">;
  /** What each name of the scenario's reach counts, for the report. */
  readonly reachNotes?: Readonly<Record<string, string>>;
  /**
   * Scenario-specific expectations on the client's view and on the faults' reach (summed
   * over the faults, plus {@link Scenario.measure}); each returned line fails the run.
   */
  check?(traffic: TrafficStats, reach: Reach): string[];
  /** Reach read once the pipeline is quiet (the bank's counters, a service's metrics). */
  measure?(ctx: MeasureContext): Promise<Reach>;
  /** Draws the whole fault plan for a fault phase of `durationMs`. Pure. */
  plan(prng: Prng, durationMs: number): FaultAction[];
  /** Injects one fault and undoes it after `holdMs`. */
  inject(action: FaultAction, ctx: ScenarioContext): Promise<Injected>;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Numbers the actions in time order. */
export function numbered(actions: Omit<FaultAction, "id">[]): FaultAction[] {
  return [...actions].sort((a, b) => a.atMs - b.atMs).map((a, i) => ({ id: i + 1, ...a }));
}
