// The alert rules against a real Prometheus (Debian's prometheus, found or installed by the
// testkit) scraping a real mesh (every service its own process, started by `startMesh`), and
// read back through Prometheus's HTTP API: ServiceDown fires when a stage is killed and clears
// once it is restarted; consumer lag fires on a stage stalled with SIGSTOP while traffic flows
// and clears after SIGCONT; StagePaused fires while Redis is paused and clears after.
//
// The rules are deploy/observability/prometheus/alerts.yml, rewritten by this test in one way
// only: every `for:` is scaled from minutes to seconds (2m → 2s, 10m → 10s), because the test
// scrapes and evaluates every second. Expressions are unchanged, with one exception:
// JetmeshConsumerLagHigh's threshold of 1000 messages is lowered to LAG_THRESHOLD, so that a few
// dozen transfers make a stalled stage's lag cross it. Rules over `[15m]` windows are not used
// here: the promtool unit tests (test/alerts.test.ts) prove those.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceNames, serviceSpec } from "@jetmesh/mesh";
import { type ChildHandle, ensurePrometheus, freePort, spawnProcess, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { postTransfer, startTestMesh, type TestMesh } from "../support/mesh.ts";

const RULES = fileURLToPath(new URL("../../deploy/observability/prometheus/alerts.yml", import.meta.url));
const LAG_THRESHOLD = 20;
/** The stalled stage keeps few messages in flight, so that most of the traffic stays pending. */
const RISK_MAX_IN_FLIGHT = "4";

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
}

/** alerts.yml with every `for:` scaled from minutes to seconds and the lag threshold lowered. */
function rewriteRules(text: string): string {
  const doc = parseYaml(text) as { groups: { rules: Rule[] }[] };
  let lowered = false;
  for (const rule of doc.groups.flatMap((g) => g.rules)) {
    if (rule.for !== undefined) {
      const m = /^(\d+)([smh])$/.exec(rule.for);
      if (!m) throw new Error(`${rule.alert}: cannot scale for: ${rule.for}`);
      const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
      rule.for = `${Math.ceil(seconds / 60)}s`;
    }
    if (rule.alert === "JetmeshConsumerLagHigh") {
      const expr = rule.expr.replace(/> 1000$/, `> ${LAG_THRESHOLD}`);
      lowered = expr !== rule.expr;
      rule.expr = expr;
    }
  }
  if (!lowered) throw new Error("JetmeshConsumerLagHigh no longer ends in `> 1000`: update this test");
  return stringifyYaml(doc);
}

interface ActiveAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing";
}

describe("prometheus end to end", { timeout: 180_000 }, () => {
  let t: TestMesh | undefined;
  let prometheus: ChildHandle | undefined;
  let promUrl = "";
  let dir = "";
  /** Processes this test stopped with SIGSTOP, resumed in afterAll whatever happens. */
  const stopped = new Set<number>();

  const pause = (pid: number) => {
    process.kill(pid, "SIGSTOP");
    stopped.add(pid);
  };
  const resume = (pid: number) => {
    process.kill(pid, "SIGCONT");
    stopped.delete(pid);
  };

  async function alerts(): Promise<ActiveAlert[]> {
    const res = await fetch(`${promUrl}/api/v1/alerts`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { status: string; data: { alerts: ActiveAlert[] } };
    if (body.status !== "success") throw new Error(`/api/v1/alerts answered ${JSON.stringify(body)}`);
    return body.data.alerts;
  }
  const matching = (all: ActiveAlert[], name: string, labels: Record<string, string>) =>
    all.filter(
      (a) => a.labels.alertname === name && Object.entries(labels).every(([k, v]) => a.labels[k] === v),
    );
  const untilFiring = (name: string, labels: Record<string, string>, timeoutMs = 45_000) =>
    waitFor(
      async () => {
        const found = matching(await alerts(), name, labels).filter((a) => a.state === "firing");
        return found.length > 0 ? found : undefined;
      },
      { what: `${name} ${JSON.stringify(labels)} firing`, timeoutMs, intervalMs: 250 },
    );
  const untilCleared = (name: string, labels: Record<string, string>, timeoutMs = 60_000) =>
    waitFor(async () => matching(await alerts(), name, labels).length === 0 || undefined, {
      what: `${name} ${JSON.stringify(labels)} cleared`,
      timeoutMs,
      intervalMs: 250,
    });

  beforeAll(async () => {
    const bin = await ensurePrometheus();
    dir = await mkdtemp(join(tmpdir(), "jetmesh-prometheus-"));
    t = await startTestMesh({
      serviceEnv: {
        risk: { JETMESH_MAX_IN_FLIGHT: RISK_MAX_IN_FLIGHT },
        // The reconciler exports every consumer's lag, read from JetStream, each half second.
        reconciler: { RECONCILE_CONSUMER_LAG_MS: "500" },
      },
    });
    const mesh = t.mesh;
    // Every service with /metrics (the jetmesh ones; the bank simulator has none), by its ops port.
    const scrape = ServiceNames.filter((n) => serviceSpec(n).jetmesh).map((n) => ({
      job_name: `jetmesh-${n}`,
      metrics_path: "/metrics",
      static_configs: [{ targets: [new URL(mesh.service(n).opsUrl).host] }],
      relabel_configs: [{ source_labels: ["job"], regex: "jetmesh-(.+)", target_label: "service" }],
    }));
    expect(scrape.map((s) => s.job_name)).toEqual(
      expect.arrayContaining(["jetmesh-gateway", "jetmesh-validator", "jetmesh-risk", "jetmesh-reconciler"]),
    );
    await writeFile(join(dir, "alerts.yml"), rewriteRules(await readFile(RULES, "utf8")));
    await writeFile(
      join(dir, "prometheus.yml"),
      stringifyYaml({
        global: { scrape_interval: "1s", scrape_timeout: "800ms", evaluation_interval: "1s" },
        rule_files: ["alerts.yml"],
        scrape_configs: scrape,
      }),
    );
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = await spawnProcess({
      name: "prometheus",
      command: bin,
      args: [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      cwd: dir,
      maxLines: 200,
    });
    await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/-/ready`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200 || undefined;
      },
      { what: "prometheus ready", timeoutMs: 30_000, intervalMs: 200 },
    );
    // Every target scraped and up before anything is broken.
    await waitFor(
      async () => {
        const res = await fetch(`${promUrl}/api/v1/targets`);
        const body = (await res.json()) as { data: { activeTargets: { health: string }[] } };
        const targets = body.data.activeTargets;
        return (targets.length === scrape.length && targets.every((x) => x.health === "up")) || undefined;
      },
      { what: "every target up", timeoutMs: 30_000, intervalMs: 250 },
    );
  }, 180_000);

  afterAll(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // already gone
      }
    }
    await prometheus?.stop(5000);
    await t?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("prometheus - the rewritten rules scale only for: and lower only the lag threshold", async () => {
    const original = parseYaml(await readFile(RULES, "utf8")) as { groups: { rules: Rule[] }[] };
    const rewritten = parseYaml(await readFile(join(dir, "alerts.yml"), "utf8")) as typeof original;
    const a = original.groups.flatMap((g) => g.rules);
    const b = rewritten.groups.flatMap((g) => g.rules);
    expect(b.map((r) => r.alert)).toEqual(a.map((r) => r.alert));
    for (const [i, r] of a.entries()) {
      expect(b[i]?.for, r.alert).toBe(`${Number(/^(\d+)m$/.exec(r.for ?? "")?.[1])}s`);
      if (r.alert !== "JetmeshConsumerLagHigh") expect(b[i]?.expr, r.alert).toBe(r.expr);
    }
    expect(b.find((r) => r.alert === "JetmeshConsumerLagHigh")?.expr).toBe(
      `max by (stage, stream) (jetmesh_consumer_pending_messages) > ${LAG_THRESHOLD}`,
    );
  });

  it("prometheus - ServiceDown fires for a killed stage and clears once it is restarted", async () => {
    const risk = t!.mesh.service("risk");
    await untilCleared("JetmeshServiceDown", {}, 30_000);
    await risk.kill();
    const [alert] = await untilFiring("JetmeshServiceDown", { service: "risk", job: "jetmesh-risk" });
    expect(alert?.labels).toMatchObject({ severity: "critical", instance: new URL(risk.opsUrl).host });
    // Only the killed one is down.
    expect(matching(await alerts(), "JetmeshServiceDown", {}).map((x) => x.labels.service)).toEqual(["risk"]);
    await risk.start();
    await untilCleared("JetmeshServiceDown", { service: "risk" });
  });

  it("prometheus - consumer lag fires on a stalled stage while traffic flows and clears after SIGCONT", async () => {
    const mesh = t!.mesh;
    const risk = mesh.service("risk");
    const pid = risk.child?.pid;
    if (!pid) throw new Error("risk is not running");
    await untilCleared("JetmeshConsumerLagHigh", { stage: "risk" }, 30_000);
    pause(pid);
    // Traffic through the gateway: the validator passes it on to VALIDATION, where risk is stalled.
    const n = LAG_THRESHOLD * 2 + Number(RISK_MAX_IN_FLIGHT);
    for (let i = 0; i < n; i++)
      await postTransfer(
        mesh.gatewayUrl,
        `lag-${i}`,
        { from: "external", to: `acc-${i % 10}`, amountMinor: 100, currency: "EUR" },
        mesh.apiKeys.operator,
      );
    // The stalled stage exports nothing (its /metrics does not answer); the reconciler, reading
    // the consumer from JetStream, does: the alert fires on the reconciler's report.
    const [alert] = await untilFiring("JetmeshConsumerLagHigh", { stage: "risk", stream: "VALIDATION" });
    const behind = Number(
      /^risk is (\d+) messages behind on VALIDATION$/.exec(alert?.annotations.summary ?? "")?.[1],
    );
    expect(behind, alert?.annotations.summary).toBeGreaterThan(LAG_THRESHOLD);
    // Reported by the reconciler: the risk target has no sample of it while stopped.
    const res = await fetch(
      `${promUrl}/api/v1/query?query=${encodeURIComponent('jetmesh_consumer_pending_messages{stage="risk",stream="VALIDATION"}')}`,
    );
    const body = (await res.json()) as { data: { result: { metric: Record<string, string> }[] } };
    expect(body.data.result.map((x) => x.metric.job)).toEqual(["jetmesh-reconciler"]);
    // The stalled stage is also not answering its scrape.
    await untilFiring("JetmeshServiceDown", { service: "risk" });
    resume(pid);
    await untilCleared("JetmeshConsumerLagHigh", { stage: "risk" });
    await untilCleared("JetmeshServiceDown", { service: "risk" });
  });

  it("prometheus - StagePaused fires while Redis is paused and clears after it answers again", async () => {
    const redisPid = t!.redis.pid;
    await untilCleared("JetmeshStagePaused", {}, 30_000);
    pause(redisPid);
    // Every stage stops pulling within 2 s of Redis not answering; the rule holds for 2 s here.
    for (const stage of ["validator", "risk", "ledger"])
      await untilFiring("JetmeshStagePaused", { stage, severity: "critical" });
    resume(redisPid);
    await untilCleared("JetmeshStagePaused", {});
  });
});
