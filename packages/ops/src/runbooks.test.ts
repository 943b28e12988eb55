// The commands the runbooks (the pages of deploy/runbooks, the Prometheus alert annotations) and
// the README's operator sections tell an operator to type are held to what exists: each
// `jetmesh …` parses as the CLI parses it, and each `nats …` is a nats CLI command naming streams
// and consumers the contracts and deploy/consumers declare. The pages have their four sections,
// and every alert rule names its page. (runbooks-live.test.ts runs the jetmesh commands.)
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Streams } from "@jetmesh/contracts";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseCli } from "./program.ts";
import { parseRunbookPage, readRunbookPages, RunbookSections } from "./runbook-pages.ts";

const root = join(import.meta.dirname, "..", "..", "..");
const read = (p: string) => readFileSync(join(root, p), "utf8");
const RULE_FILES = readdirSync(join(root, "deploy/observability/prometheus"))
  .filter((f) => f.endsWith(".yml") && f !== "prometheus.yml")
  .map((f) => `deploy/observability/prometheus/${f}`);
const PAGES = readRunbookPages(root);
const pagePath = (file: string) => `deploy/runbooks/${file}`;

/** The README's operator sections: `## Operators` and `## Streams` (which shows the deploy commands). */
function operatorSections(readme: string): string {
  const sections = readme.split(/^## /m);
  return sections.filter((s) => /^(Operators|Streams)\b/.test(s)).join("\n");
}

interface Found {
  readonly where: string;
  readonly text: string;
}

/** Commands in backticks (YAML folds joined) and in ```sh blocks; `pnpm ` in front dropped. */
function commandsIn(where: string, text: string): Found[] {
  const out: Found[] = [];
  const flat = text.replace(/\n\s*/g, " ");
  for (const m of flat.matchAll(/`([^`]+)`/g)) out.push({ where, text: (m[1] as string).trim() });
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g))
    for (const line of (block[1] as string).split("\n")) {
      const cmd = line.replace(/#.*$/, "").trim();
      // `for f in …; do nats stream add --config "$f"; done`: the command inside
      const inner = /\bdo (.*?); done/.exec(cmd)?.[1];
      if (cmd) out.push({ where, text: inner ?? cmd });
    }
  return out
    .map((f) => ({ ...f, text: f.text.replace(/^pnpm (?=jetmesh\b)/, "") }))
    .filter((f) => /^(jetmesh|nats) /.test(f.text));
}

/** Placeholders the runbooks use, replaced by values of the right kind. */
function concrete(cmd: string): string {
  return cmd
    .replace(/\{\{ \$labels\.stream \}\}|<stream>/g, "INGRESS")
    .replace(/\{\{ \$labels\.stage \}\}|<stage>|<durable>/g, "validator")
    .replace(/\{\{ \$labels\.kind \}\}/g, "stuck_transfer")
    .replace(/<transferId>/g, "tr-1")
    .replace(/<dlqSeqs>/g, "1 2")
    .replace(/<dlqSeq>|<seq>/g, "1")
    .replace(/'<reason>'/g, "invalid")
    .replace(/"\$PAYOUT_BANK_URL"/g, "http://127.0.0.1:9090")
    .replace(/\.\.\.|…/g, "")
    .replace(/"\$f"/g, "deploy/streams/INGRESS.json")
    .trim();
}

const all: Found[] = [
  ...RULE_FILES.flatMap((f) => commandsIn(f, read(f))),
  ...commandsIn("README.md", operatorSections(read("README.md"))),
  ...PAGES.map((p) => pagePath(p.file)).flatMap((f) => commandsIn(f, read(f))),
];

/** Every durable consumer declared, as `STREAM.durable`. */
const consumers = new Set(readdirSync(join(root, "deploy/consumers")).map((f) => f.replace(/\.json$/, "")));
const streams = new Set<string>(Object.values(Streams).map((d) => d.name));

/** nats CLI commands (subcommand → verbs) the runbooks may use. */
const NATS_VERBS: Record<string, readonly string[]> = {
  stream: ["info", "view", "get", "purge", "edit", "add", "ls", "report", "rmm", "restore"],
  consumer: ["info", "add", "ls", "report", "next", "rm", "edit"],
  server: ["report", "list", "ls", "check", "info"],
  kv: ["get", "ls", "info", "history", "watch"],
  sub: [],
  pub: [],
};

/** Why a nats command is wrong, or undefined. */
function natsProblem(cmd: string): string | undefined {
  const words = cmd.split(/\s+/).filter((w) => !w.startsWith("-"));
  const [, group, verb, a, b] = words;
  if (group === undefined || !(group in NATS_VERBS)) return `no nats command ${group}`;
  const verbs = NATS_VERBS[group] ?? [];
  if (verbs.length === 0) return undefined;
  if (verb === undefined) return undefined;
  if (!verbs.includes(verb)) return `no nats ${group} ${verb}`;
  if (group === "stream" && a !== undefined && !a.includes("/") && !streams.has(a))
    return `no stream ${a} in the contracts`;
  if (group === "consumer" && a !== undefined) {
    if (!streams.has(a)) return `no stream ${a} in the contracts`;
    if (b !== undefined && !consumers.has(`${a}.${b}`)) return `no consumer ${b} on ${a} in deploy/consumers`;
  }
  return undefined;
}

describe("runbook commands", () => {
  it("runbooks - the runbooks and the README's operator sections hold jetmesh and nats commands", () => {
    const jetmesh = all.filter((f) => f.text.startsWith("jetmesh "));
    const nats = all.filter((f) => f.text.startsWith("nats "));
    expect(jetmesh.length).toBeGreaterThan(10);
    expect(nats.length).toBeGreaterThan(10);
    expect(new Set(all.map((f) => f.where))).toEqual(
      new Set([...RULE_FILES, "README.md", ...PAGES.map((p) => pagePath(p.file))]),
    );
  });

  it("runbooks - every jetmesh command parses as the CLI parses it", async () => {
    const problems: string[] = [];
    for (const f of all.filter((x) => x.text.startsWith("jetmesh "))) {
      const argv = concrete(f.text).split(/\s+/).slice(1);
      const r = await parseCli(argv);
      if (!r.ok) problems.push(`${f.where}: \`${f.text}\`: ${r.error}`);
    }
    expect(problems).toEqual([]);
  });

  it("runbooks - every nats command is a nats CLI command naming declared streams and consumers", () => {
    const problems: string[] = [];
    for (const f of all.filter((x) => x.text.startsWith("nats "))) {
      const why = natsProblem(concrete(f.text));
      if (why) problems.push(`${f.where}: \`${f.text}\`: ${why}`);
    }
    expect(problems).toEqual([]);
  });

  it("runbooks - no runbook sends operators to pnpm's own rebuild", () => {
    for (const f of [
      ...RULE_FILES,
      "README.md",
      "services/reconciler/README.md",
      ...PAGES.map((p) => pagePath(p.file)),
    ])
      expect(read(f), f).not.toContain("pnpm --filter @jetmesh/ledger rebuild");
  });

  it("runbooks - the checks catch a wrong command", async () => {
    expect((await parseCli(["dlq", "replay", "--everything"])).ok).toBe(false);
    expect((await parseCli(["rebuild", "--check"])).ok).toBe(true);
    expect(natsProblem("nats consumer info INGRESS nobody")).toBe(
      "no consumer nobody on INGRESS in deploy/consumers",
    );
    expect(natsProblem("nats stream info NOPE")).toBe("no stream NOPE in the contracts");
    expect(natsProblem("nats stream frobnicate LEDGER")).toBe("no nats stream frobnicate");
  });
});

interface Rule {
  readonly alert?: string;
  readonly annotations?: Record<string, string>;
}

describe("runbook pages", () => {
  const rules = RULE_FILES.flatMap((f) =>
    (parseYaml(read(f)) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) =>
      g.rules.filter((r) => r.alert).map((r) => ({ file: f, rule: r })),
    ),
  );

  it("runbooks - there is a page per incident the on-call meets", () => {
    expect(PAGES.map((p) => p.file)).toEqual(
      expect.arrayContaining([
        "consumer-lag.md",
        "no-progress.md",
        "dlq-growing.md",
        "poison-message.md",
        "stream-nearly-full.md",
        "nats-node-lost.md",
        "redis-lost.md",
        "schema-rollout.md",
        "stuck-payout.md",
      ]),
    );
  });

  it("runbooks - every page has Signal, Diagnose, Fix and Verify, with jetmesh commands to diagnose and verify", () => {
    for (const p of PAGES) {
      expect(p.sections, p.file).toEqual([...RunbookSections]);
      for (const section of ["Diagnose", "Fix", "Verify"])
        expect(
          p.blocks.filter((b) => b.section === section).flatMap((b) => b.commands).length,
          `${p.file} ${section}: a sh block`,
        ).toBeGreaterThan(0);
      for (const section of ["Diagnose", "Verify"])
        expect(
          p.blocks
            .filter((b) => b.section === section)
            .flatMap((b) => b.commands.filter((c) => c.startsWith("jetmesh "))),
          `${p.file} ${section}: a jetmesh command`,
        ).not.toEqual([]);
    }
  });

  it("runbooks - every alert rule names its page in runbook_url, and the page names the alert", () => {
    const problems: string[] = [];
    for (const { file, rule } of rules) {
      const url = rule.annotations?.runbook_url ?? "";
      const page = PAGES.find((p) => url === pagePath(p.file));
      if (!page) problems.push(`${file} ${rule.alert}: runbook_url ${JSON.stringify(url)} names no page`);
      else if (!page.text.includes(String(rule.alert)))
        problems.push(`${page.file} does not name ${rule.alert}`);
    }
    expect(rules.length).toBeGreaterThan(30);
    expect(problems).toEqual([]);
  });

  it("runbooks - the index lists every page, and the README's operator section links the index", () => {
    const index = read("deploy/runbooks/README.md");
    for (const p of PAGES) expect(index, p.file).toContain(`(${p.file})`);
    expect(operatorSections(read("README.md"))).toContain("deploy/runbooks/README.md");
  });

  it("runbooks - the page checks catch a page without its sections", () => {
    const p = parseRunbookPage(
      "x.md",
      "# X\n\n## Signal\n\n## Fix\n\n```sh\njetmesh dlq ls   # parked\n```\n",
    );
    expect(p.sections).not.toEqual([...RunbookSections]);
    expect(p.blocks).toEqual([{ section: "Fix", heading: "", commands: ["jetmesh dlq ls"] }]);
  });
});
