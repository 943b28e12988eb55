// The alert rules against a real Prometheus (Debian's prometheus, found or installed by the
// testkit) scraping a real mesh (every service its own process, started by `startMesh`), and
// read back through Prometheus's HTTP API: ServiceDown fires when a stage is killed and clears
// once it is restarted; consumer lag fires on a stage stalled with SIGSTOP while traffic flows
// and clears after SIGCONT; StagePaused and RedisDown fire while Redis is paused and clear
// after; NatsServerUnhealthy and NatsStreamLeaderless fire while nats-server is paused and clear
// after. RedisNoMaxmemory fires for the test's Redis, which runs without maxmemory.
//
// Prometheus loads every rules file the production prometheus.yml loads (its `rule_files`, read
// here: a file added there is loaded here too; test/alerts.test.ts holds those to every rules
// file of the folder), each rewritten by this test in one way only: every `for:` is scaled from
// minutes to seconds (2m → 2s, 10m → 10s), because the test scrapes and evaluates every second.
// Expressions are unchanged, with one exception: JetmeshConsumerLagHigh's threshold of 1000
// messages is lowered to LAG_THRESHOLD, so that a few dozen transfers make a stalled stage's lag
// cross it. Rules over `[15m]` windows and the brokers' rules a single nats-server cannot show (a
// replica offline or lagging, a server down in a cluster, no meta leader) are not made to fire
// here: the promtool unit tests (test/alerts.test.ts) prove those.
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ServiceNames, serviceSpec } from "@jetmesh/mesh";
import { type ChildHandle, ensurePrometheus, freePort, spawnProcess, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { postTransfer, startTestMesh, type TestMesh } from "../support/mesh.ts";

const PROMETHEUS = fileURLToPath(new URL("../../deploy/observability/prometheus/", import.meta.url));
/** The rules files the production Prometheus loads, all of them loaded here. */
const RULE_FILES =
  (parseYaml(readFileSync(join(PROMETHEUS, "prometheus.yml"), "utf8")) as { rule_files?: string[] })
    .rule_files ?? [];
const LAG_THRESHOLD = 20;
/** The stalled stage keeps few messages in flight, so that most of the traffic stays pending. */
const RISK_MAX_IN_FLIGHT = "4";

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
}

interface RulesFile {
  groups: { name: string; rules: Rule[] }[];
}

/** A rules file with every `for:` scaled from minutes to seconds and the lag threshold lowered. */
function rewriteRules(doc: RulesFile): { doc: RulesFile; lowered: boolean } {
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
  return { doc, lowered };
}

const readRules = async (path: string) => parseYaml(await readFile(path, "utf8")) as RulesFile;

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
  /** An instant query's series: their labels and values. */
  async function query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as {
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    return body.data.result.map((x) => ({ metric: x.metric, value: Number(x.value[1]) }));
  }
  /** Waits until `expr` gives exactly these series, as [labels..., value] rows of `pick`. */
  const untilSeries = (
    expr: string,
    pick: (metric: Record<string, string>) => (string | undefined)[],
    rows: unknown[][],
  ) =>
    waitFor(
      async () => {
        const got = (await query(expr)).map((x) => [...pick(x.metric), x.value]);
        return JSON.stringify(got) === JSON.stringify(rows) || undefined;
      },
      { what: `${expr} giving ${JSON.stringify(rows)}`, timeoutMs: 15_000, intervalMs: 250 },
    );
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
        // The reconciler exports every consumer's lag, read from JetStream, and the brokers'
        // health (NATS streams and monitoring port, Redis), each half second; a stream-info
        // request or a Redis round unanswered for a second counts as down.
        reconciler: {
          RECONCILE_CONSUMER_LAG_MS: "500",
          RECONCILE_INFRA_MS: "500",
          RECONCILE_INFRA_TIMEOUT_MS: "1000",
        },
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
    let lowered = false;
    for (const file of RULE_FILES) {
      const rewritten = rewriteRules(await readRules(join(PROMETHEUS, file)));
      lowered ||= rewritten.lowered;
      await writeFile(join(dir, file), stringifyYaml(rewritten.doc));
    }
    if (!lowered) throw new Error("JetmeshConsumerLagHigh no longer ends in `> 1000`: update this test");
    await writeFile(
      join(dir, "prometheus.yml"),
      stringifyYaml({
        global: { scrape_interval: "1s", scrape_timeout: "800ms", evaluation_interval: "1s" },
        rule_files: RULE_FILES,
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

  it("prometheus - every rules file of prometheus.yml is loaded, rewritten only in for: and the lag threshold", async () => {
    expect(RULE_FILES).toEqual(
      expect.arrayContaining(["alerts.yml", "reconciler-alerts.yml", "slo-alerts.yml", "infra-alerts.yml"]),
    );
    const a: Rule[] = [];
    const b: Rule[] = [];
    for (const file of RULE_FILES) {
      a.push(...(await readRules(join(PROMETHEUS, file))).groups.flatMap((g) => g.rules));
      b.push(...(await readRules(join(dir, file))).groups.flatMap((g) => g.rules));
    }
    expect(b.map((r) => r.alert)).toEqual(a.map((r) => r.alert));
    for (const [i, r] of a.entries()) {
      expect(b[i]?.for, r.alert).toBe(`${Number(/^(\d+)m$/.exec(r.for ?? "")?.[1])}s`);
      if (r.alert !== "JetmeshConsumerLagHigh") expect(b[i]?.expr, r.alert).toBe(r.expr);
    }
    expect(b.find((r) => r.alert === "JetmeshConsumerLagHigh")?.expr).toBe(
      `max by (stage, stream) (jetmesh_consumer_pending_messages) > ${LAG_THRESHOLD}`,
    );
    // Prometheus itself evaluates every rule of every file (a file it failed to load is absent).
    const res = await fetch(`${promUrl}/api/v1/rules?type=alert`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { data: { groups: { file: string; rules: { name: string }[] }[] } };
    const loaded = body.data.groups.flatMap((g) => g.rules.map((r) => `${basename(g.file)} ${r.name}`));
    const expected: string[] = [];
    for (const file of RULE_FILES)
      for (const r of (await readRules(join(PROMETHEUS, file))).groups.flatMap((g) => g.rules))
        if (r.alert) expected.push(`${file} ${r.alert}`);
    expect(loaded.sort()).toEqual(expected.sort());
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
    const pending = await query('jetmesh_consumer_pending_messages{stage="risk",stream="VALIDATION"}');
    expect(pending.map((x) => x.metric.job)).toEqual(["jetmesh-reconciler"]);
    // The stalled stage is also not answering its scrape.
    await untilFiring("JetmeshServiceDown", { service: "risk" });
    resume(pid);
    await untilCleared("JetmeshConsumerLagHigh", { stage: "risk" });
    await untilCleared("JetmeshServiceDown", { service: "risk" });
  });

  it("prometheus - StagePaused and RedisDown fire while Redis is paused and clear after it answers again", async () => {
    const redisPid = t!.redis.pid;
    // The reconciler labels Redis's series with host:port of REDIS_URL.
    const server = new URL(t!.mesh.redisUrl).host;
    await untilCleared("JetmeshStagePaused", {}, 30_000);
    await untilCleared("JetmeshRedisDown", {}, 30_000);
    // The reconciler reads Redis (the rule sees a series, not an absent one).
    await untilSeries("jetmesh_redis_up", (m) => [m.server, m.job], [[server, "jetmesh-reconciler", 1]]);
    // The test's redis-server runs without maxmemory (startRedis adds none): 15m scaled to 15 s,
    // long past by now.
    await untilFiring("JetmeshRedisNoMaxmemory", { server, severity: "warning" }, 30_000);
    pause(redisPid);
    // Every stage stops pulling within 2 s of Redis not answering; the rule holds for 2 s here.
    for (const stage of ["validator", "risk", "ledger"])
      await untilFiring("JetmeshStagePaused", { stage, severity: "critical" });
    // The reconciler's INFO goes unanswered for RECONCILE_INFRA_TIMEOUT_MS: jetmesh_redis_up 0.
    const [down] = await untilFiring("JetmeshRedisDown", { server, severity: "critical" });
    expect(down?.annotations.summary).toBe(`Redis ${server} does not answer`);
    resume(redisPid);
    await untilCleared("JetmeshStagePaused", {});
    await untilCleared("JetmeshRedisDown", {});
  });

  it("prometheus - NatsServerUnhealthy and NatsStreamLeaderless fire while nats-server is paused and clear after", async () => {
    const nats = t!.nats;
    // The monitoring port the runner gave the reconciler (RECONCILE_NATS_MONITOR_URLS).
    const target = `127.0.0.1:${nats.monitorPort}`;
    await untilCleared("JetmeshNatsServerUnhealthy", {}, 30_000);
    await untilCleared("JetmeshNatsStreamLeaderless", {}, 30_000);
    // The reconciler reads both (the rules see series, not absent ones): each stream led, R1.
    await untilSeries("jetmesh_nats_server_healthy", (m) => [m.target], [[target, 1]]);
    await untilSeries('jetmesh_nats_stream_leader{stream="LEDGER"}', (m) => [m.job], [
      ["jetmesh-reconciler", 1],
    ]);
    pause(nats.pid);
    // Its /healthz and each stream-info request go unanswered for RECONCILE_INFRA_TIMEOUT_MS.
    await untilFiring("JetmeshNatsServerUnhealthy", { target, severity: "critical" });
    await untilFiring("JetmeshNatsStreamLeaderless", { stream: "LEDGER", severity: "critical" });
    resume(nats.pid);
    await untilCleared("JetmeshNatsServerUnhealthy", {});
    await untilCleared("JetmeshNatsStreamLeaderless", {});
  });
});
