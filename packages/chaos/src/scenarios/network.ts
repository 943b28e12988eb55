import { type StageService, StageServices } from "../environment.ts";
import { type FaultAction, type Injected, numbered, pause, type Scenario } from "../scenario.ts";

const LINKS = ["nats", "redis"] as const;
type Link = (typeof LINKS)[number];
const KINDS = ["net-cut", "net-hold", "net-latency"] as const;
const RAMP_STEP_MS = 250;

/**
 * Network faults between one service and NATS or Redis, through the testkit fault proxy in
 * front of each (127.0.0.1 only): connections cut (and new ones refused for a while),
 * connections held silent for seconds, latency ramped up and dropped. The first six faults
 * cover every kind on both links; the rest are drawn.
 */
export const network: Scenario = {
  name: "network",
  title: "network faults service↔NATS and service↔Redis: cuts, silent holds, latency ramps",
  kinds: [...KINDS],
  env: { proxies: true },
  plan(prng, durationMs) {
    const count = Math.max(6, Math.floor(durationMs / 5000));
    const spacing = durationMs / count;
    const combos: [string, Link][] = prng.shuffle(
      KINDS.flatMap((k) => LINKS.map((l): [string, Link] => [k, l])),
    );
    while (combos.length < count) combos.push([prng.pick(KINDS), prng.pick(LINKS)]);
    const actions = combos.map(([kind, link], k): Omit<FaultAction, "id"> => {
      const service = prng.pick(StageServices);
      const atMs = Math.round(k * spacing + prng.float(0, spacing * 0.2));
      const target = `${service}→${link}`;
      const affects = [service];
      if (kind === "net-cut") {
        // Half the cuts also refuse reconnects for a while (a short partition).
        const refuseMs = prng.chance(0.5) ? prng.int(500, 3000) : 0;
        return { atMs, kind, target, affects, holdMs: refuseMs, params: { service, link, refuseMs } };
      }
      if (kind === "net-hold")
        return { atMs, kind, target, holdMs: prng.int(1000, 5000), params: { service, link } };
      const peakMs = prng.int(100, 800);
      const rampMs = prng.int(2000, 5000);
      return {
        atMs,
        kind,
        target,
        affects,
        holdMs: prng.int(500, 2000),
        params: { service, link, peakMs, rampMs },
      };
    });
    return numbered(actions);
  },
  async inject(a, ctx): Promise<Injected> {
    const service = a.params?.service as StageService;
    const link = a.params?.link as Link;
    const proxy = ctx.env.proxies.get(service)?.[link];
    if (!proxy) throw new Error(`no ${link} proxy in front of ${service}`);
    if (a.kind === "net-cut") {
      const open = proxy.connections();
      if (a.holdMs > 0) proxy.setRefusing(true);
      proxy.cut();
      try {
        await pause(a.holdMs, ctx.signal);
      } finally {
        proxy.setRefusing(false);
      }
      return {
        endedAtMs: Date.now(),
        detail: `cut ${open} connection(s)${a.holdMs ? `, refused reconnects for ${a.holdMs} ms` : ""}`,
      };
    }
    if (a.kind === "net-hold") {
      proxy.setSilent(true);
      try {
        await pause(a.holdMs, ctx.signal);
      } finally {
        // The proxy drops what arrives while silent. A real network retransmits instead, or
        // the connection dies of its timeouts; resuming a stream with a hole in it would
        // desynchronise the protocol (a Redis reply matched to the wrong command), a fault
        // no network produces. So a hold ends the way a real one does: the connection dies.
        proxy.cut();
        proxy.setSilent(false);
      }
      return {
        endedAtMs: Date.now(),
        detail: `silent for ${a.holdMs} ms, then the held connections were cut`,
      };
    }
    const peak = Number(a.params?.peakMs ?? 0);
    const ramp = Number(a.params?.rampMs ?? 0);
    const steps = Math.max(1, Math.round(ramp / RAMP_STEP_MS));
    try {
      for (let s = 1; s <= steps && !ctx.signal.aborted; s++) {
        proxy.setLatency(Math.round((peak * s) / steps));
        await pause(RAMP_STEP_MS, ctx.signal);
      }
      await pause(a.holdMs, ctx.signal);
    } finally {
      proxy.setLatency(0);
    }
    return {
      endedAtMs: Date.now(),
      detail: `latency 0→${peak} ms over ${ramp} ms, held ${a.holdMs} ms, then 0`,
    };
  },
};
