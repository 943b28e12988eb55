// Just enough PromQL and Prometheus text format to check names: which metrics an
// expression reads, and which series a /metrics page exposes.

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
  "atan2",
]);

/**
 * Names of the metrics a PromQL expression selects. Strips string literals, label
 * matchers, ranges and grouping clauses, then keeps identifiers that are not functions,
 * aggregations or keywords. Grafana variables (`$stage`, `$__rate_interval`) are ignored.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()/g)) {
    const name = m[0];
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/** The metric a Grafana `label_values(<selector>, <label>)` query reads, else the query's own names. */
export function metricNamesInVariableQuery(query: string): string[] {
  const lv = /^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/.exec(query);
  return metricNamesIn(lv ? lv[1]! : query);
}

/** One sample line of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family from `# HELP` / `# TYPE` lines. */
export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
}

/** Parses a /metrics page (text format 0.0.4). */
export function parseExposition(text: string): { families: Map<string, Family>; samples: Sample[] } {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("# HELP ")) {
      const [name, ...text] = line.slice("# HELP ".length).split(" ");
      help.set(name!, text.join(" "));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice("# TYPE ".length).split(" ");
      families.set(name!, { name: name!, type: type!, help: help.get(name!) ?? "" });
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { families, samples };
}

/** Every sample name a family can expose (histograms and summaries have suffixed series). */
export function sampleNamesOf(f: Family): string[] {
  switch (f.type) {
    case "histogram":
      return [f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`];
    case "summary":
      return [f.name, `${f.name}_sum`, `${f.name}_count`];
    default:
      return [f.name];
  }
}
