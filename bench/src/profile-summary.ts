// Summarises a V8 .cpuprofile (from `pnpm bench --profile`): self time by function and by
// package, and inclusive time of the functions that matter. No flame graph needed to see
// what a message costs.
//   node --import tsx bench/src/profile-summary.ts reports/profiles/<file>.cpuprofile [top]
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const repoRoot = `${resolve(dirname(fileURLToPath(import.meta.url)), "../..")}/`;

/** A frame's file for the function lists: repo-relative for this checkout's files, else its package. */
function fileOf(url: string): string {
  const i = url.indexOf(repoRoot);
  return i >= 0 ? url.slice(i + repoRoot.length) : where(url);
}

function where(url: string): string {
  const m = /node_modules\/\.pnpm\/([^/]+)\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[2]!;
  // A file of this checkout (bundles map back to their sources): its package folder.
  const i = url.indexOf(repoRoot);
  if (i >= 0)
    return url
      .slice(i + repoRoot.length)
      .split("/")
      .slice(0, 2)
      .join("/");
  if (url.startsWith("node:")) return url;
  return url ? url.split("/").slice(-2).join("/") : "(native)";
}

/**
 * The profile with every frame of a bundle (bench/dist/*.mjs, services' dist/main.mjs) moved
 * to its place in the sources through the bundle's source map, so that time still adds up
 * by package and by source line. Frames without a map are left as they are.
 */
export function throughSourceMaps(p: Profile): Profile {
  const maps = new Map<string, { map: SourceMap; dir: string } | undefined>();
  const mapOf = (url: string) => {
    if (!maps.has(url)) {
      const file = url.startsWith("file:") ? `${fileURLToPath(url)}.map` : undefined;
      maps.set(
        url,
        file && existsSync(file)
          ? { map: new SourceMap(JSON.parse(readFileSync(file, "utf8"))), dir: dirname(file) }
          : undefined,
      );
    }
    return maps.get(url);
  };
  const nodes = p.nodes.map((n) => {
    const m = n.callFrame.url.endsWith(".mjs") ? mapOf(n.callFrame.url) : undefined;
    const e = m?.map.findEntry(n.callFrame.lineNumber, n.callFrame.columnNumber ?? 0);
    if (!m || !e || !("originalSource" in e)) return n;
    const url = pathToFileURL(resolve(m.dir, e.originalSource)).href;
    return { ...n, callFrame: { ...n.callFrame, url, lineNumber: e.originalLine } };
  });
  return { ...p, nodes };
}

/**
 * Self and inclusive time of the busy samples (idle left out) between the first and the
 * last sample that runs message work (a frame of @nats-io/jetstream), so that start-up
 * (module loading) does not count. Map a bundle's profile with {@link throughSourceMaps} first.
 */
export function summarise(p: Profile, top = 30): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const working = new Map<number, boolean>();
  const isWork = (id: number): boolean => {
    let w = working.get(id);
    if (w === undefined) {
      const up = parent.get(id);
      w = byId.get(id)!.callFrame.url.includes("@nats-io/jetstream") || (up !== undefined && isWork(up));
      working.set(id, w);
    }
    return w;
  };
  let from = p.samples.findIndex(isWork);
  let to = p.samples.length - 1;
  while (to > from && !isWork(p.samples[to]!)) to--;
  if (from < 0) from = 0;
  const self = new Map<number, number>();
  let idle = 0;
  for (let i = from; i <= to; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i] ?? 0;
    if (byId.get(id)!.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);

  const fnSelf = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  const fnTotal = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const name = `${n.callFrame.functionName || "(anonymous)"} ${fileOf(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    fnSelf.set(name, (fnSelf.get(name) ?? 0) + t);
    const pkg = where(n.callFrame.url);
    pkgSelf.set(pkg, (pkgSelf.get(pkg) ?? 0) + t);
    // inclusive: every distinct frame on the stack once
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const k = `${f.functionName || "(anonymous)"} ${fileOf(f.url)}:${f.lineNumber + 1}`;
      if (seen.has(k)) continue;
      seen.add(k);
      fnTotal.set(k, (fnTotal.get(k) ?? 0) + t);
    }
  }
  const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const list = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, t]) => `${pct(t)}  ${k}`)
      .join("\n");
  return [
    `busy ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms, in the message-work window`,
    "\n== self time by package ==",
    list(pkgSelf, 20),
    "\n== self time by function ==",
    list(fnSelf, top),
    "\n== inclusive time by function ==",
    list(fnTotal, top),
  ].join("\n");
}

if (process.argv[1]?.endsWith("profile-summary.ts")) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile-summary.ts <file.cpuprofile> [top]");
  const profile = throughSourceMaps(JSON.parse(readFileSync(file, "utf8")) as Profile);
  console.log(summarise(profile, Number(process.argv[3] ?? 30)));
}
