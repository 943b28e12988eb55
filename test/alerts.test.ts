// The alert rules are proven to fire: promtool accepts every rules file under
// deploy/observability/prometheus (alerts.yml, reconciler-alerts.yml, any added later) and
// prometheus.yml, which loads exactly those files; every unit test under tests/ passes; and
// every rule of every file has a test that makes it fire and one that sees it absent (below
// its threshold, before its `for:`, or after recovery). A rule added without a test fails here.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ensurePromtool } from "@jetmesh/testkit";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

const run = promisify(execFile);
const PROMETHEUS = fileURLToPath(new URL("../deploy/observability/prometheus/", import.meta.url));
const TESTS = join(PROMETHEUS, "tests");
const isYaml = (f: string) => f.endsWith(".yml") || f.endsWith(".yaml");
const testFiles = readdirSync(TESTS).filter(isYaml).sort();
/** Every YAML file next to prometheus.yml is a rules file (tests live in tests/). */
const ruleFiles = readdirSync(PROMETHEUS)
  .filter((f) => isYaml(f) && f !== "prometheus.yml")
  .sort();

/** Runs promtool in the prometheus folder; resolves with its output, rejects with it when it fails. */
async function promtool(...args: string[]): Promise<string> {
  const bin = await ensurePromtool();
  try {
    const { stdout, stderr } = await run(bin, args, { cwd: PROMETHEUS, maxBuffer: 16 * 1024 * 1024 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    // The message carries promtool's whole report; the exec error as cause would print it twice.
    throw new Error(`promtool ${args.join(" ")} exited ${e.code}:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

interface AlertRuleTest {
  eval_time?: string;
  alertname?: string;
  exp_alerts?: unknown[] | null;
}
interface TestFile {
  rule_files?: string[];
  tests?: { alert_rule_test?: AlertRuleTest[] }[];
}

function alertNames(ruleFile: string): string[] {
  const rules = parseYaml(readFileSync(join(PROMETHEUS, ruleFile), "utf8")) as {
    groups: { rules: { alert?: string }[] }[];
  };
  return rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
}

describe("alert rules under promtool", { timeout: 120_000 }, () => {
  it("alerts - the rules files are alerts.yml, reconciler-alerts.yml and what prometheus.yml loads", () => {
    expect(ruleFiles).toEqual(expect.arrayContaining(["alerts.yml", "reconciler-alerts.yml"]));
    const config = parseYaml(readFileSync(join(PROMETHEUS, "prometheus.yml"), "utf8")) as {
      rule_files?: string[];
    };
    // A rules file Prometheus does not load alerts nobody; one it loads must be tested here.
    expect([...(config.rule_files ?? [])].sort()).toEqual(ruleFiles);
  });

  it.each(ruleFiles)("alerts - promtool check rules accepts %s", async (file) => {
    expect(await promtool("check", "rules", file)).toMatch(/SUCCESS/);
  });

  it("alerts - promtool check config accepts prometheus.yml and the rule files it loads", async () => {
    expect(await promtool("check", "config", "prometheus.yml")).toMatch(/is valid prometheus config/);
  });

  it("alerts - there are unit tests to run", () => {
    expect(testFiles.length).toBeGreaterThan(0);
  });

  it.each(testFiles)("alerts - promtool test rules passes tests/%s", async (file) => {
    expect(await promtool("test", "rules", join("tests", file))).toMatch(/SUCCESS/);
  });

  it.each(ruleFiles)(
    "alerts - every rule of %s has a test that fires it and a test that sees it absent, and every test names a rule",
    (ruleFile) => {
      const alerts = alertNames(ruleFile);
      expect(alerts.length).toBeGreaterThan(0);
      const fires = new Set<string>();
      const absent = new Set<string>();
      const unknown: string[] = [];
      for (const file of testFiles) {
        const doc = parseYaml(readFileSync(join(TESTS, file), "utf8")) as TestFile;
        // One rules file per test file, the real one: tests of a copy would prove nothing.
        expect(doc.rule_files, `tests/${file} rule_files`).toHaveLength(1);
        expect(
          ruleFiles.map((f) => `../${f}`),
          `tests/${file} rule_files`,
        ).toContain(doc.rule_files?.[0]);
        if (doc.rule_files?.[0] !== `../${ruleFile}`) continue;
        for (const t of doc.tests ?? []) {
          for (const a of t.alert_rule_test ?? []) {
            const name = String(a.alertname);
            if (!alerts.includes(name)) unknown.push(`${name} (tests/${file}, eval_time ${a.eval_time})`);
            ((a.exp_alerts ?? []).length > 0 ? fires : absent).add(name);
          }
        }
      }
      expect(unknown, `alert_rule_test entries naming no rule of ${ruleFile}`).toEqual([]);
      expect(
        alerts.filter((a) => !fires.has(a)),
        `rules of ${ruleFile} no test makes fire (an exp_alerts entry)`,
      ).toEqual([]);
      expect(
        alerts.filter((a) => !absent.has(a)),
        `rules of ${ruleFile} no test sees absent (an eval with exp_alerts empty)`,
      ).toEqual([]);
    },
  );
});
