import { setTimeout as sleep } from "node:timers/promises";
import type { StageService } from "../environment.ts";
import type { Instance } from "../instances.ts";
import { type PromSample, promSum, scrape } from "../prom.ts";
import { CHAOS_SETTINGS } from "../run.ts";
import { type FaultAction, type Injected, numbered, pause, type Reach, type Scenario } from "../scenario.ts";

const STAGES = ["ledger", "payout"] as const satisfies readonly StageService[];
/** Ack wait and lease of the chaos settings (the lease follows the ack wait). */
const ACK_WAIT_MS = Number(CHAOS_SETTINGS.JETMESH_ACK_WAIT_MS);
const PAST_LEASE_MS = 2 * ACK_WAIT_MS;
/** How long a fault waits for the frozen instance to have a message in hand. */
const MID_WORK_WAIT_MS = 3000;

const TAKEN = "taken over";
const FENCED = "fenced on resume";
const ABSORBED = "absorbed on resume";
const RETRIED = "retried on resume";

/** Counters of one instance that tell who processed what. */
interface Counts {
  readonly redeliveries: number;
  readonly fenced: number;
  readonly duplicate: number;
  readonly retried: number;
}

function countsOf(m: readonly PromSample[], stage: string): Counts {
  return {
    redeliveries: promSum(m, "jetmesh_redeliveries_total", { stage }),
    fenced: promSum(m, "jetmesh_messages_processed_total", { stage, outcome: "fenced" }),
    duplicate: promSum(m, "jetmesh_messages_processed_total", { stage, outcome: "duplicate" }),
    retried: promSum(m, "jetmesh_messages_processed_total", { stage, outcome: "retried" }),
  };
}

async function waitInFlight(i: Instance, stage: string, signal: AbortSignal): Promise<number> {
  const deadline = Date.now() + MID_WORK_WAIT_MS;
  let n = 0;
  while (Date.now() < deadline && !signal.aborted) {
    n = promSum(await scrape(i.url), "jetmesh_in_flight_messages", { stage });
    if (n > 0) return n;
    await sleep(10);
  }
  return n;
}

/**
 * A stage scaled out to two instances on the same durable consumers, one of them frozen
 * (SIGSTOP) for longer than its ack wait plus its lease while traffic flows, then resumed
 * (SIGCONT): the broker redelivers what it held to the other instance, whose attempts take
 * over the expired leases; the resumed one wakes up with stale attempts that must find
 * themselves fenced (a renewal or a mark-done refused) and change nothing. Struck when the
 * frozen instance has a message in hand, when it can be caught with one (the payout in a
 * bank call, most often). The ledger and the payout run two instances each.
 */
export const pausePastLease: Scenario = {
  name: "pause-past-lease",
  title: "two instances of the ledger and of payout; one frozen (SIGSTOP) past its ack wait and lease",
  kinds: ["pause-past-lease"],
  env: { instances: { ledger: 2, payout: 2 } },
  reachNotes: {
    [TAKEN]: "messages the other instance received as redeliveries while its twin was frozen and just after",
    [FENCED]:
      "attempts of the frozen instance that found their lease taken when it resumed, and left the message",
    [ABSORBED]: "messages the frozen instance found already done by the other when it resumed",
    [RETRIED]:
      "attempts of the frozen instance nak'd as transient failures after it resumed (a stale attempt whose own timeout fired before its heartbeat found the lease gone lands here, not in fenced)",
  },
  check(_traffic, reach) {
    return (reach[TAKEN] ?? 0) > 0
      ? []
      : [
          "no message of a frozen instance was taken over by the other one: the fault did not reach past the lease",
        ];
  },
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 20_000));
    const window = durationMs / count;
    const order = prng.shuffle(STAGES);
    const actions: Omit<FaultAction, "id">[] = [];
    for (let k = 0; k < count; k++) {
      const stage = order[k % order.length] as (typeof STAGES)[number];
      const instance = prng.int(1, 2);
      actions.push({
        atMs: Math.round(k * window + prng.float(0.05, 0.2) * window),
        kind: "pause-past-lease",
        // The stage, so the next fault on it waits until this one's reach is read.
        target: stage,
        // The other instance keeps the stage moving: recovery is the frozen one's.
        affects: [stage],
        holdMs: prng.int(PAST_LEASE_MS + 1000, PAST_LEASE_MS + 4000),
        params: { stage, instance },
      });
    }
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const stage = String(a.params?.stage) as StageService;
    const all = ctx.env.instances(stage);
    if (all.length < 2) throw new Error(`${stage} runs ${all.length} instance(s); the fault needs two`);
    const target = all[(Number(a.params?.instance ?? 1) - 1) % all.length] as Instance;
    const others = all.filter((i) => i !== target);
    const read = (i: Instance) => scrape(i.url).then((m) => countsOf(m, stage));
    const before = await Promise.all(all.map(read));
    const inFlight = await waitInFlight(target, stage, ctx.signal);
    const pid = target.pid;
    target.pause();
    try {
      await pause(a.holdMs, ctx.signal);
    } finally {
      target.resume();
    }
    const endedAtMs = Date.now();
    // The resumed instance finishes its stale attempts within a lease; the other's
    // redeliveries of what it held arrive within an ack wait of the freeze.
    const reach = (async (): Promise<Reach> => {
      await sleep(ACK_WAIT_MS + 1000);
      const after = await Promise.all(all.map(read));
      const delta = (i: Instance, k: keyof Counts) =>
        (after[all.indexOf(i)] as Counts)[k] - (before[all.indexOf(i)] as Counts)[k];
      const taken = others.reduce((n, i) => n + delta(i, "redeliveries"), 0);
      ctx.log(
        `    ${target.label}: resumed; ${others.map((i) => i.label).join(", ")} took ${taken} redelivered message(s), ` +
          `${delta(target, "fenced")} stale attempt(s) fenced, ${delta(target, "retried")} retried, ${delta(target, "duplicate")} found done`,
      );
      return {
        [TAKEN]: taken,
        [FENCED]: delta(target, "fenced"),
        [ABSORBED]: delta(target, "duplicate"),
        [RETRIED]: delta(target, "retried"),
      };
    })();
    return {
      endedAtMs,
      detail: `SIGSTOP ${target.label} (pid ${pid}, ${inFlight} message(s) in hand) for ${a.holdMs} ms (ack wait + lease ${PAST_LEASE_MS} ms), then SIGCONT`,
      reach,
      settle: reach.then(() => {}),
    };
  },
};
