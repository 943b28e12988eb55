import { StageServices } from "../environment.ts";
import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

/** Kills every few seconds; every stage at least twice, then random targets (the bank too). */
export const serviceKill: Scenario = {
  name: "kill",
  title: "SIGKILL of a random service process every few seconds, restarted after a pause",
  kinds: ["kill-service"],
  plan(prng, durationMs) {
    const minimum = 2 * StageServices.length;
    const count = Math.max(minimum, Math.floor(durationMs / 3500));
    const spacing = durationMs / count;
    // Two shuffled rounds guarantee every stage is hit more than once.
    const targets: string[] = [...prng.shuffle(StageServices), ...prng.shuffle(StageServices)];
    while (targets.length < count) targets.push(prng.pick([...StageServices, "bank-sim"]));
    const actions: Omit<FaultAction, "id">[] = targets.map((target, k) => ({
      atMs: Math.round(k * spacing + prng.float(0, spacing * 0.3)),
      kind: "kill-service",
      target,
      // The bank is outside the pipeline: while it is down, the payout stage is what stops.
      affects: [target === "bank-sim" ? "payout" : target],
      holdMs: prng.int(300, Math.max(300, Math.min(2500, Math.round(spacing * 0.6)))),
    }));
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const name = a.target as Parameters<typeof ctx.env.kill>[0];
    const pid = ctx.env.mesh.service(name).child?.pid;
    await ctx.env.kill(name);
    await pause(a.holdMs, ctx.signal);
    const endedAtMs = Date.now();
    // The restart runs on while the next fault (on another service) goes ahead.
    const settle = ctx.env.start(name);
    return { endedAtMs, detail: `SIGKILL pid ${pid}, restarted after ${a.holdMs} ms`, settle };
  },
};
