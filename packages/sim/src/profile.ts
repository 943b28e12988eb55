// `pnpm sim --profile`: where a world's CPU goes, by layer. The simulator's speed target
// (1,000 worlds of 200 transfers a minute on two cores) leaves 120 ms of CPU per world;
// this tells how much of a world is the real code under test, which no simulator work can
// remove, and how much is the simulator itself.
import { readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { SourceMap } from "node:module";
import { fileURLToPath } from "node:url";

/** The layers a sample is charged to, in the order they are printed. */
export const LAYERS = [
  "real: stage runtime, services, contracts",
  "real: nats.js client",
  "real: their libraries (msgpackr, prom-client, OpenTelemetry, TypeBox, pino)",
  "simulator: JetStream, Redis, bank, world",
  "simulator: Lua VM (fengari)",
  "simulator: virtual clock (fake-timers)",
  "checks (testkit, the backlog reader)",
  "node: promises, timers, crypto, GC, other",
] as const;
export type Layer = (typeof LAYERS)[number];

/** CPU self time per layer, in ms, over `worlds` worlds. */
export interface LayerProfile {
  readonly worlds: number;
  readonly ms: Record<Layer, number>;
}

const LIBRARIES = [
  "msgpackr",
  "prom-client",
  "@opentelemetry",
  "@sinclair/typebox",
  "pino",
  "ajv",
  "sonic-boom",
];

/**
 * The layer of a source path, as the bundle's source map names it (or a script URL where
 * no map entry exists). Exported for its test.
 */
export function layerOf(source: string): Layer {
  if (source.includes("node_modules")) {
    if (source.includes("@nats-io/")) return "real: nats.js client";
    if (source.includes("/fengari/")) return "simulator: Lua VM (fengari)";
    if (source.includes("@sinonjs/fake-timers")) return "simulator: virtual clock (fake-timers)";
    if (LIBRARIES.some((l) => source.includes(`/${l}/`)))
      return "real: their libraries (msgpackr, prom-client, OpenTelemetry, TypeBox, pino)";
    return "node: promises, timers, crypto, GC, other";
  }
  // The bank is bank-sim's model: part of the simulated world, as the world itself is.
  if (/(^|\/)(packages\/sim\/src|services\/bank-sim)\//.test(source) || source.startsWith("../src/"))
    return "simulator: JetStream, Redis, bank, world";
  // The invariant checker and the backlog reader the world's quiet check uses.
  if (/(^|\/)packages\/(testkit|mesh)\//.test(source) || /^\.\.\/\.\.\/(testkit|mesh)\//.test(source))
    return "checks (testkit, the backlog reader)";
  if (/(^|\/)(packages|services)\//.test(source) || source.startsWith("../../"))
    return "real: stage runtime, services, contracts";
  return "node: promises, timers, crypto, GC, other";
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly url: string; readonly lineNumber: number; readonly columnNumber: number };
  }>;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Charges every sample of a V8 CPU profile to a layer, through the bundle's source map. */
export function chargeLayers(
  profile: CpuProfile,
  map: SourceMap | undefined,
  bundleUrl: string,
): Record<Layer, number> {
  const layerOfNode = new Map<number, Layer>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    let source = f.url;
    if (map && f.url === bundleUrl) {
      const e = map.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string };
      if (e.originalSource) source = e.originalSource;
    }
    layerOfNode.set(n.id, layerOf(source));
  }
  const ms = Object.fromEntries(LAYERS.map((l) => [l, 0])) as Record<Layer, number>;
  for (let i = 0; i < profile.samples.length; i++) {
    const layer =
      layerOfNode.get(profile.samples[i] as number) ?? "node: promises, timers, crypto, GC, other";
    ms[layer] += (profile.timeDeltas[i] ?? 0) / 1000;
  }
  return ms;
}

/** Samples this process's CPU until the returned function is called with the worlds run. */
export async function startProfile(): Promise<(worlds: number) => Promise<LayerProfile>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 500 });
  await session.post("Profiler.start");
  const cpuStart = process.cpuUsage();
  return async (worlds) => {
    const { profile } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
    const cpu = process.cpuUsage(cpuStart);
    session.disconnect();
    const bundle = fileURLToPath(import.meta.url);
    let map: SourceMap | undefined;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${bundle}.map`, "utf8")));
    } catch {
      // Run from source (tsx, vitest): the URLs are the sources themselves.
    }
    // Idle samples are the process waiting, not a world's work.
    const idle = new Set(
      profile.nodes.filter((n) => n.callFrame.url === "" && /^\(idle\)$/.test(nameOf(n))).map((n) => n.id),
    );
    const busy = {
      ...profile,
      samples: profile.samples.filter((s) => !idle.has(s)),
      timeDeltas: profile.timeDeltas.filter((_, i) => !idle.has(profile.samples[i] as number)),
    };
    // The sampler's deltas are wall time: on a loaded machine a descheduled process still
    // collects them. The process's own CPU time is the measure; the samples give the shares.
    const ms = chargeLayers(busy, map, import.meta.url);
    const sampled = LAYERS.reduce((sum, l) => sum + ms[l], 0);
    const scale = sampled > 0 ? (cpu.user + cpu.system) / 1000 / sampled : 0;
    for (const l of LAYERS) ms[l] *= scale;
    return { worlds, ms };
  };
}

function nameOf(n: unknown): string {
  return (n as { callFrame: { functionName: string } }).callFrame.functionName;
}

/** Sums the profiles of several worker processes. */
export function addProfiles(a: LayerProfile | undefined, b: LayerProfile): LayerProfile {
  if (!a) return b;
  const ms = { ...a.ms };
  for (const l of LAYERS) ms[l] += b.ms[l];
  return { worlds: a.worlds + b.worlds, ms };
}

/**
 * The table `--profile` prints. The sampler itself costs CPU (about 1.7 times a world's, at
 * this interval), so the milliseconds are the profiled run's; the shares are what carry over
 * to a run without it, and the bound is given as a factor on that run's speed.
 */
export function describeProfile(p: LayerProfile): string {
  const total = LAYERS.reduce((s, l) => s + p.ms[l], 0);
  const per = (ms: number) => ms / Math.max(1, p.worlds);
  const share = (ms: number) => ms / Math.max(total, 1e-9);
  const lines = LAYERS.map(
    (l) =>
      `  ${per(p.ms[l]).toFixed(0).padStart(6)} ms  ${(share(p.ms[l]) * 100).toFixed(1).padStart(5)}%  ${l}`,
  );
  const sum = (pick: (l: Layer) => boolean) => LAYERS.filter(pick).reduce((s, l) => s + p.ms[l], 0);
  const real = share(sum((l) => l.startsWith("real:")));
  const node = share(p.ms["node: promises, timers, crypto, GC, other"]);
  return [
    `CPU per world by layer, under the profiler (the process's CPU time, shared out by self-time samples every 0.5 ms; ${p.worlds} worlds):`,
    ...lines,
    `  ${per(total).toFixed(0).padStart(6)} ms  total`,
    `the real code under test is ${(real * 100).toFixed(1)}% of a world's CPU: with a simulator, a virtual clock and a Lua VM that cost nothing, worlds would run at most ${(1 / real).toFixed(1)} times as fast as without --profile (${(1 / (real + node)).toFixed(1)} times if node's own ${(node * 100).toFixed(1)}% stayed)`,
  ].join("\n");
}
