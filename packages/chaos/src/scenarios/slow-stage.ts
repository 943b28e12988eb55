import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

/**
 * A slow downstream stage: a stage frozen with SIGSTOP for seconds (its connections stay
 * open, its in-flight messages expire and are redelivered to it), then SIGCONT. The
 * validator is the consumer whose lag the gateway watches, so freezing it must make the
 * gateway shed load with 503 + Retry-After (GATEWAY_MAX_LAG small); freezing risk or the
 * ledger lets the backlog wait in the broker, never in a process's heap.
 */
export const slowStage: Scenario = {
  name: "slow",
  title: "a slow downstream stage (SIGSTOP/SIGCONT): the gateway sheds load, memory stays bounded",
  kinds: ["pause-stage"],
  env: {
    serviceEnv: {
      gateway: { GATEWAY_MAX_LAG: "20", GATEWAY_LAG_POLL_MS: "200" },
      // The gateway watches num_pending, which grows only once the frozen validator's pulls
      // are used up: a small in-flight bound (pulls of 2 × 8) makes it grow within a second.
      validator: { JETMESH_MAX_IN_FLIGHT: "8" },
    },
  },
  check(traffic) {
    const problems: string[] = [];
    if (traffic.shed === 0)
      problems.push("the gateway never shed load (no 503 overloaded) while a stage was frozen");
    if (traffic.shedWithoutRetryAfter > 0)
      problems.push(`${traffic.shedWithoutRetryAfter} shed answer(s) came without Retry-After`);
    return problems;
  },
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 12_000));
    const window = durationMs / count;
    const targets = ["validator", "validator"];
    while (targets.length < count) targets.push(prng.pick(["validator", "validator", "risk", "ledger"]));
    const actions: Omit<FaultAction, "id">[] = prng.shuffle(targets).map((target, k) => ({
      atMs: Math.round(k * window + prng.float(0.1, 0.3) * window),
      kind: "pause-stage",
      target,
      affects: [target],
      holdMs: prng.int(2500, Math.max(2500, Math.min(8000, Math.round(window * 0.6)))),
    }));
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const name = a.target as Parameters<typeof ctx.env.pause>[0];
    ctx.env.pause(name);
    try {
      await pause(a.holdMs, ctx.signal);
    } finally {
      ctx.env.resume(name);
    }
    return { endedAtMs: Date.now(), detail: `SIGSTOP for ${a.holdMs} ms, then SIGCONT` };
  },
};
