import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

/** nats-server killed with -9 and restarted on the same store: twice, more in a long run. */
export const natsRestart: Scenario = {
  name: "nats",
  title: "nats-server kill -9 and restart on the same store, twice",
  kinds: ["nats-kill"],
  plan(prng, durationMs) {
    const count = Math.max(2, Math.floor(durationMs / 45_000));
    const window = durationMs / count;
    const actions: Omit<FaultAction, "id">[] = [];
    for (let k = 0; k < count; k++) {
      actions.push({
        atMs: Math.round(k * window + prng.float(0.15, 0.45) * window),
        kind: "nats-kill",
        target: "nats-server",
        holdMs: prng.int(1000, 4000),
      });
    }
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const nats = ctx.env.nats;
    if (!nats) throw new Error("the nats scenario needs a single nats-server");
    const pid = nats.pid;
    await nats.kill("SIGKILL");
    await pause(a.holdMs, ctx.signal);
    const endedAtMs = Date.now();
    await nats.restart();
    return { endedAtMs, detail: `kill -9 pid ${pid}; restarted on ${nats.storeDir} after ${a.holdMs} ms` };
  },
};
