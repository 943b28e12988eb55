import { setTimeout as sleep } from "node:timers/promises";
import type { BankLink, BankLinkStats } from "../bank-link.ts";
import type { ChaosEnv } from "../environment.ts";
import { type FaultAction, type Injected, numbered, pause, type Reach, type Scenario } from "../scenario.ts";

/**
 * The payout against a bank that behaves like real payment APIs, under faults aimed at its
 * calls. Every number below hangs on one rule the payout enforces at start
 * (services/payout/src/config.ts): PAYOUT_BANK_RETENTION_MS ≥ 2 × its redelivery horizon,
 * the runtime's redeliveryHorizonMs (packages/stage/src/retry-policy.ts):
 *   (maxDeliver − 1) × max(ackWait, lease + 50, handler + publish timeout + publish retry horizon + retry max)
 *   = 7 × max(1500, 1550, 1000 + 600 + 0 + 300) = 7 × 1900 = 13 300 ms ≤ 30 000 / 2.
 * A drift here shows at once: the payout refuses to start.
 */
const RETENTION_MS = 30_000;
const PAYOUT_TIMEOUT_MS = 800;
const PAYOUT_SETTINGS = {
  PAYOUT_BANK_TIMEOUT_MS: String(PAYOUT_TIMEOUT_MS),
  PAYOUT_BANK_RETENTION_MS: String(RETENTION_MS),
  JETMESH_ACK_WAIT_MS: "1500",
  // Above the bank timeout (the payout checks it), below the ack wait.
  JETMESH_HANDLER_TIMEOUT_MS: "1000",
  JETMESH_PUBLISH_TIMEOUT_MS: "600",
  JETMESH_PUBLISH_RETRY_HORIZON_MS: "0",
  JETMESH_RETRY_MAX_MS: "300",
  JETMESH_MAX_DELIVER: "8",
  // Probes of an open breaker at +1.2, 3.6, 8.4, 18 s: the outage (below) ends between the
  // third and the fourth, so calls resume about 18 s after the breaker opened, well within
  // the retention of the keys the outage left unresolved.
  JETMESH_BREAKER_COOLDOWN_MS: "1200",
} as const;
/** The payout's redelivery horizon with {@link PAYOUT_SETTINGS} (see the comment above). */
export const PAYOUT_HORIZON_MS = 7 * Math.max(1500, 1550, 1000 + 600 + 0 + 300);
const BANK_SETTINGS = {
  BANK_PROCESSING_MIN_MS: "50",
  BANK_PROCESSING_MAX_MS: "400",
  BANK_SLOW_RATE: "0.15",
  // Longer than the payout's timeout: the bank answers after the client left.
  BANK_SLOW_MS: "1500",
  BANK_RETENTION_MS: String(RETENTION_MS),
} as const;

/** How long a mid-call fault waits for a payout call to be open. */
const CALL_WAIT_MS = 20_000;
/** Longest hold of a request behind its retry. */
const MAX_HOLD_MS = 3000;

const IN_USE = "409 in flight";
const LEFT = "answers after the client left";
const FORGOTTEN = "forgotten keys";
const RESENT_FORGOTTEN = "requests for forgotten keys";
const KILLS = "kills mid-call";
const PAUSES = "pauses mid-call";
const HELD = "requests overtaken by their retry";
const LATE_409 = "late originals answered 409";

/**
 * The realistic bank (409 while a key is processing, 15% of answers after the payout's
 * timeout, keys forgotten after 30 s) with the payout killed and frozen in the middle of a
 * bank call, one bank outage longer than the payout's redelivery horizon (its circuit
 * breaker must hold the payouts, or they would spend every delivery and be parked), and
 * requests that reach the bank after their own retry. Fails unless the bank saw each of
 * its realistic behaviours at work: 409s, answers nobody waited for, keys forgotten.
 */
export const bank: Scenario = {
  name: "bank",
  title:
    "the realistic bank: payout killed and frozen mid-call, a long outage, late requests, forgotten keys",
  kinds: ["kill-service", "pause-stage", "bank-outage", "bank-late-request"],
  env: { bankLink: true, serviceEnv: { "bank-sim": BANK_SETTINGS, payout: PAYOUT_SETTINGS } },
  traffic: { payoutShare: 0.15, refusedShare: 0.04 },
  reachNotes: {
    [IN_USE]:
      "409 idempotency_key_in_use answered while the same key was processing (bank stats conflictsInProgress)",
    [LEFT]: "payout answers the bank sent after the payout had timed out and gone (answersAfterClientLeft)",
    [FORGOTTEN]: "decided keys the bank forgot after its retention (forgottenKeys)",
    [RESENT_FORGOTTEN]:
      "payout requests for a key the bank had forgotten: a possible second payment (must be 0)",
    [KILLS]: "payout SIGKILLs with a bank call open",
    [PAUSES]: "payout SIGSTOPs with a bank call open",
    [HELD]: "payout requests that reached the bank just after their retry",
    [LATE_409]: "of those, answered 409 because the retry was still processing",
  },
  check(_traffic, reach) {
    const problems: string[] = [];
    for (const k of [IN_USE, LEFT, FORGOTTEN, KILLS, PAUSES])
      if (!((reach[k] ?? 0) > 0))
        problems.push(`reach: ${k} is ${reach[k] ?? 0}, the faults did not reach the bank`);
    if ((reach[RESENT_FORGOTTEN] ?? 0) > 0)
      problems.push(`the payout sent ${reach[RESENT_FORGOTTEN]} request(s) for keys the bank had forgotten`);
    return problems;
  },
  async measure({ env }) {
    // Keys decided early in the run are forgotten RETENTION_MS later; a short run waits for them.
    const deadline = Date.now() + RETENTION_MS;
    let s = await bankStats(env.bankUrl);
    while ((s.forgottenKeys ?? 0) === 0 && Date.now() < deadline) {
      await sleep(1000);
      s = await bankStats(env.bankUrl);
    }
    return {
      [IN_USE]: s.conflictsInProgress ?? 0,
      [LEFT]: s.answersAfterClientLeft ?? 0,
      [FORGOTTEN]: s.forgottenKeys ?? 0,
      [RESENT_FORGOTTEN]: s.requestsForForgottenKeys ?? 0,
    };
  },
  plan(prng, durationMs) {
    const each = Math.max(1, Math.floor(durationMs / 60_000));
    const kinds: string[] = ["bank-outage"];
    for (let i = 0; i < each; i++) kinds.push("kill-service", "pause-stage", "bank-late-request");
    // The outage never opens the phase: the faults before it find the payout at work.
    const order = prng.shuffle(kinds.slice(1));
    order.splice(prng.int(1, order.length), 0, "bank-outage");
    const slot = durationMs / order.length;
    const actions = order.map((kind, k): Omit<FaultAction, "id"> => {
      const atMs = Math.round(k * slot + prng.float(0, 0.2) * slot);
      if (kind === "bank-outage")
        return {
          atMs,
          kind,
          target: "bank-sim",
          affects: ["payout"],
          holdMs: prng.int(PAYOUT_HORIZON_MS + 1500, PAYOUT_HORIZON_MS + 2500),
        };
      if (kind === "kill-service")
        return { atMs, kind, target: "payout", affects: ["payout"], holdMs: prng.int(300, 2500) };
      if (kind === "pause-stage")
        return { atMs, kind, target: "payout", affects: ["payout"], holdMs: prng.int(2500, 5000) };
      return { atMs, kind, target: "bank-link", affects: ["payout"], holdMs: prng.int(4000, 8000) };
    });
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const env = ctx.env;
    const link = env.bankLink;
    if (!link) throw new Error("the bank scenario needs the bank link");
    if (a.kind === "bank-outage") return outage(env, a, ctx.signal);
    if (a.kind === "bank-late-request") return lateRequests(link, a, ctx.signal);
    const open = await link.waitForCall(CALL_WAIT_MS, ctx.signal);
    const calls = link.callsInFlight();
    const pid = env.mesh.services.payout.child?.pid;
    const when = open ? `with ${calls} bank call(s) open` : `with no bank call open after ${CALL_WAIT_MS} ms`;
    if (a.kind === "kill-service") {
      await env.kill("payout");
      await pause(a.holdMs, ctx.signal);
      const endedAtMs = Date.now();
      return {
        endedAtMs,
        detail: `SIGKILL payout (pid ${pid}) ${when}, restarted after ${a.holdMs} ms`,
        settle: env.start("payout"),
        reach: { [KILLS]: open ? 1 : 0 },
      };
    }
    env.pause("payout");
    try {
      await pause(a.holdMs, ctx.signal);
    } finally {
      env.resume("payout");
    }
    return {
      endedAtMs: Date.now(),
      detail: `SIGSTOP payout (pid ${pid}) ${when} for ${a.holdMs} ms, then SIGCONT`,
      reach: { [PAUSES]: open ? 1 : 0 },
    };
  },
};

async function outage(env: ChaosEnv, a: FaultAction, signal: AbortSignal): Promise<Injected> {
  const res = await fetch(`${env.bankUrl}/admin/outage`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ durationMs: a.holdMs }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /admin/outage answered ${res.status}: ${text.slice(0, 200)}`);
  await pause(a.holdMs, signal);
  if (signal.aborted)
    await fetch(`${env.bankUrl}/admin/outage`, { method: "POST", body: '{"durationMs":0}' }).catch(() => {});
  return {
    endedAtMs: Date.now(),
    detail: `every /v1 request answered 503 for ${a.holdMs} ms (the payout's redelivery horizon is ${PAYOUT_HORIZON_MS} ms)`,
  };
}

async function lateRequests(link: BankLink, a: FaultAction, signal: AbortSignal): Promise<Injected> {
  const before = link.stats();
  link.holdOriginals(true, MAX_HOLD_MS);
  try {
    await pause(a.holdMs, signal);
  } finally {
    link.holdOriginals(false);
  }
  const endedAtMs = Date.now();
  // Requests held when the window closed are still delivered, at most MAX_HOLD_MS later.
  const reach = (async (): Promise<Reach> => {
    await sleep(MAX_HOLD_MS + 2000);
    const after = link.stats();
    const late = (s: BankLinkStats, status: string) => s.lateAnswers[status] ?? 0;
    return {
      [HELD]: after.overtaken - before.overtaken,
      [LATE_409]: late(after, "409") - late(before, "409"),
    };
  })();
  return {
    endedAtMs,
    detail: `for ${a.holdMs} ms the first request of each payout key was held until its retry had gone ahead (at most ${MAX_HOLD_MS} ms)`,
    reach,
    settle: reach.then(() => {}),
  };
}

async function bankStats(bankUrl: string): Promise<Record<string, number>> {
  const res = await fetch(`${bankUrl}/admin/stats`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /admin/stats answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, number>;
}
