// deploy/observability/prometheus/reconciler-alerts.yml: every rule is complete, names only
// metrics the reconciler exports, and Prometheus scrapes the reconciler where it listens.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { createBrokerHealthMetrics } from "./broker-health.ts";
import { ReconcilerEnv } from "./config.ts";
import { createReconcilerMetrics } from "./metrics.ts";
import { createNatsMonitorMetrics } from "./nats-monitor.ts";
import { createRedisHealthMetrics } from "./redis-health.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const read = (p: string) => readFileSync(`${root}${p}`, "utf8");

interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: string };
  annotations: Record<string, string>;
}

describe("reconciler observability", () => {
  const rules = (
    parseYaml(read("deploy/observability/prometheus/reconciler-alerts.yml")) as {
      groups: { name: string; rules: Rule[] }[];
    }
  ).groups.flatMap((g) => g.rules);

  it("reconciler - every alert rule has expr, for, severity and a runbook, and names only exported metrics", () => {
    const registry = new Registry();
    createReconcilerMetrics(registry, { openFindings: () => [] });
    const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const r of rules) {
      expect(r.alert).toMatch(/^JetmeshReconcile[A-Za-z]+$/);
      expect(r.for).toMatch(/^\d+[smhd]$/);
      expect(["critical", "warning", "info"]).toContain(r.labels.severity);
      for (const a of ["summary", "description", "runbook"])
        expect(r.annotations[a]?.length ?? 0, `${r.alert} ${a}`).toBeGreaterThan(20);
      for (const m of r.expr.matchAll(/\b(jetmesh_[a-z_]+)\b/g))
        expect(exported, `${r.alert} names ${m[1]}`).toContain(m[1]);
      const kept =
        /by \(([^)]*)\)/
          .exec(r.expr)?.[1]
          ?.split(",")
          .map((s) => s.trim()) ?? [];
      for (const m of r.annotations.summary?.matchAll(/\$labels\.(\w+)/g) ?? [])
        expect(kept, r.alert).toContain(m[1]);
    }
    // one rule per kind of finding
    for (const kind of [
      "stuck_transfer",
      "projection_mismatch",
      "bank_mismatch",
      "insolvent_prefix",
      "dlq_aged",
      "settings_drift",
    ])
      expect(
        rules.some((r) => r.expr.includes(`kind="${kind}"`)),
        kind,
      ).toBe(true);
  });

  it("reconciler - its dashboard parses, and every panel queries metrics the reconciler exports", () => {
    const registry = new Registry();
    createReconcilerMetrics(registry, { openFindings: () => [] });
    const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const d = JSON.parse(read("deploy/observability/grafana/dashboards/jetmesh-reconciler.json")) as {
      uid: string;
      panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
    };
    expect(d.uid).toBe("jetmesh-reconciler");
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
    const queried = new Set<string>();
    for (const p of d.panels.filter((x) => x.type !== "row")) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? [])
        for (const m of t.expr.matchAll(/\b(jetmesh_[a-z_]+)\b/g)) {
          expect(exported, `${p.title} queries ${m[1]}`).toContain(m[1]);
          queried.add(m[1] as string);
        }
    }
    for (const name of [
      "jetmesh_reconcile_open_findings",
      "jetmesh_reconcile_oldest_open_finding_seconds",
      "jetmesh_reconcile_checks_total",
      "jetmesh_reconcile_lag_seconds",
    ])
      expect(queried).toContain(name);
  });

  it("reconciler - Prometheus scrapes it on its default port and loads its rules", () => {
    const prom = parseYaml(read("deploy/observability/prometheus/prometheus.yml")) as {
      rule_files: string[];
      scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    expect(prom.rule_files).toContain("reconciler-alerts.yml");
    const job = prom.scrape_configs.find((j) => j.job_name === "jetmesh-reconciler");
    expect(job?.dns_sd_configs?.[0]).toMatchObject({
      names: ["reconciler"],
      port: ReconcilerEnv.HTTP_PORT.default,
    });
    const manifest = JSON.parse(read("services/reconciler/manifest.json")) as {
      ports: { default: number }[];
    };
    expect(manifest.ports[0]?.default).toBe(8085);
  });

  it("reconciler - infra-alerts.yml and the brokers' dashboard name only the NATS and Redis metrics it exports, and cover each concern", () => {
    const registry = new Registry();
    createBrokerHealthMetrics(registry);
    createRedisHealthMetrics(registry, "redis:6379");
    createNatsMonitorMetrics(registry);
    const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const infra = (
      parseYaml(read("deploy/observability/prometheus/infra-alerts.yml")) as {
        groups: { name: string; rules: Rule[] }[];
      }
    ).groups.flatMap((g) => g.rules);
    for (const r of infra) {
      expect(r.alert).toMatch(/^Jetmesh(Nats|Redis)[A-Za-z]+$/);
      expect(r.for).toMatch(/^\d+[smhd]$/);
      expect(["critical", "warning", "info"]).toContain(r.labels.severity);
      for (const a of ["summary", "description", "runbook"])
        expect(r.annotations[a]?.length ?? 0, `${r.alert} ${a}`).toBeGreaterThan(20);
      // the runbook page another change writes, named the same way everywhere
      expect(r.annotations.runbook, r.alert).toMatch(/^Page: deploy\/runbooks\/[a-z-]+\.md\. /);
      for (const m of r.expr.matchAll(/\b(jetmesh_[a-z_]+)\b/g))
        expect(exported, `${r.alert} names ${m[1]}`).toContain(m[1]);
      const kept = [...r.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) =>
        (m[1] as string).split(",").map((x) => x.trim()),
      );
      for (const m of r.annotations.summary?.matchAll(/\$labels\.(\w+)/g) ?? [])
        expect(kept, r.alert).toContain(m[1]);
    }
    const exprOf = (alert: string) => infra.find((r) => r.alert === alert)?.expr ?? "";
    expect(exprOf("JetmeshNatsStreamLeaderless")).toContain("jetmesh_nats_stream_leader");
    expect(exprOf("JetmeshNatsReplicaOffline")).toContain("jetmesh_nats_replica_offline");
    expect(exprOf("JetmeshNatsReplicaLagging")).toContain("jetmesh_nats_replica_lag_operations");
    expect(exprOf("JetmeshNatsServerDown")).toContain("jetmesh_nats_server_up");
    expect(exprOf("JetmeshRedisDown")).toContain("jetmesh_redis_up");
    expect(exprOf("JetmeshRedisMemoryHigh")).toMatch(
      /jetmesh_redis_used_memory_bytes[\s\S]*jetmesh_redis_maxmemory_bytes[\s\S]*> 0\.8$/,
    );

    const d = JSON.parse(read("deploy/observability/grafana/dashboards/jetmesh-infra.json")) as {
      uid: string;
      panels: { id: number; type: string; title: string; gridPos?: unknown; targets?: { expr: string }[] }[];
    };
    expect(d.uid).toBe("jetmesh-infra");
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
    const queried = new Set<string>();
    for (const p of d.panels) {
      expect(p.gridPos, p.title).toBeDefined();
      if (p.type === "row") continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? [])
        for (const m of t.expr.matchAll(/\b(jetmesh_[a-z_]+)\b/g)) {
          expect(exported, `${p.title} queries ${m[1]}`).toContain(m[1]);
          queried.add(m[1] as string);
        }
    }
    // every alert's metric has a panel
    for (const r of infra)
      for (const m of r.expr.matchAll(/\b(jetmesh_[a-z_]+)\b/g)) expect(queried, r.alert).toContain(m[1]);
    expect(queried).toContain("jetmesh_redis_keys_by_kind");
  });
});
