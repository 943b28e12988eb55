// The alert rules and the dashboards only help if the metrics they name exist: every name
// that a rules file prometheus.yml loads or a dashboard under grafana/dashboards references must
// be one the services or the reconciler (findings, lag, the brokers' health) export on /metrics
// after handling traffic. The deploy files are checked for structure too, and the exported
// metrics for Prometheus conventions and bounded labels.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { httpGet, PIPELINE, type Pipeline, type PipelineService, startPipeline } from "./support/pipeline.ts";
import {
  type Family,
  metricNamesIn,
  metricNamesInVariableQuery,
  parseExposition,
  type Sample,
  sampleNamesOf,
} from "./support/promql.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, "utf8");
const OBS = "deploy/observability";

/** Series Prometheus adds itself, not exported by any service. */
const SYNTHETIC = new Set([
  "up",
  "ALERTS",
  "ALERTS_FOR_STATE",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
]);
/** Labels whose values grow with traffic; none may appear on a jetmesh metric. */
const UNBOUNDED_LABELS = [
  "event_id",
  "transfer_id",
  "trace_id",
  "span_id",
  "subject",
  "account",
  "from",
  "to",
  "url",
  "path",
];

interface Rule {
  alert?: unknown;
  record?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

function loadRules(file = "alerts.yml"): { groups: { name: string; rules: Rule[] }[] } {
  return parseYaml(read(`${OBS}/prometheus/${file}`)) as { groups: { name: string; rules: Rule[] }[] };
}
/** The rules files the production Prometheus loads. */
const RULE_FILES = (parseYaml(read(`${OBS}/prometheus/prometheus.yml`)) as { rule_files: string[] })
  .rule_files;
/** Every dashboard Grafana provisions. */
const DASHBOARDS = readdirSync(`${root}${OBS}/grafana/dashboards`)
  .filter((f) => f.endsWith(".json"))
  .sort();

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
  gridPos?: unknown;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
  annotations?: { list: { expr?: string }[] };
}

function loadDashboard(file = "jetmesh-pipeline.json"): Dashboard {
  return JSON.parse(read(`${OBS}/grafana/dashboards/${file}`)) as Dashboard;
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every metric name referenced by the loaded rules files and the dashboards, with where. */
function referencedMetrics(): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  const add = (names: string[], where: string) => {
    for (const n of names) refs.set(n, [...(refs.get(n) ?? []), where]);
  };
  for (const file of RULE_FILES)
    for (const g of loadRules(file).groups)
      for (const r of g.rules) add(metricNamesIn(String(r.expr)), `${file}: alert ${String(r.alert)}`);
  for (const file of DASHBOARDS) {
    const d = loadDashboard(file);
    for (const p of allPanels(d.panels))
      for (const t of p.targets ?? []) add(metricNamesIn(t.expr ?? ""), `${file}: panel "${p.title}"`);
    for (const v of d.templating.list) {
      if (v.type !== "query") continue;
      const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
      add(metricNamesInVariableQuery(q), `${file}: variable $${v.name}`);
    }
    for (const a of d.annotations?.list ?? []) if (a.expr) add(metricNamesIn(a.expr), `${file}: annotation`);
  }
  return refs;
}

describe("promql name extraction", () => {
  it("observability - metric names are read out of PromQL, not label names, functions or Grafana variables", () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (stage, le) (rate(jetmesh_handler_duration_seconds_bucket{stage=~"$stage"}[$__rate_interval]))) > 2.5',
      ),
    ).toEqual(["jetmesh_handler_duration_seconds_bucket"]);
    expect(
      metricNamesIn(
        "(sum by (stage) (a_total + b) > 0) unless on (stage) (sum(increase(c_total[10m])) by (stage) > 1e-9)",
      ).sort(),
    ).toEqual(["a_total", "b", "c_total"]);
    expect(metricNamesIn('time() - max by (stage) (x_seconds{outcome="acked"}) offset 5m')).toEqual([
      "x_seconds",
    ]);
    expect(metricNamesInVariableQuery("label_values(jetmesh_messages_processed_total, stage)")).toEqual([
      "jetmesh_messages_processed_total",
    ]);
  });
});

describe("deploy/observability files", () => {
  it("observability - alert rules parse, and every rule has expr, for, labels.severity and runbook-style annotations", () => {
    const rules = loadRules();
    expect(Array.isArray(rules.groups)).toBe(true);
    const names = new Set<string>();
    for (const g of rules.groups) {
      expect(typeof g.name).toBe("string");
      expect(g.rules.length).toBeGreaterThan(0);
      for (const r of g.rules) {
        const where = `${g.name}/${String(r.alert)}`;
        expect(r.alert, where).toMatch(/^Jetmesh[A-Z][A-Za-z0-9]+$/);
        expect(names.has(String(r.alert)), `duplicate ${where}`).toBe(false);
        names.add(String(r.alert));
        expect(typeof r.expr, where).toBe("string");
        expect(balanced(String(r.expr)), `brackets of ${where}`).toBe(true);
        expect(r.for, where).toMatch(/^\d+[smhd]$/);
        expect(["critical", "warning", "info"], where).toContain(r.labels?.severity);
        for (const a of ["summary", "description", "runbook"]) {
          expect(typeof r.annotations?.[a], `${where} annotations.${a}`).toBe("string");
          expect(String(r.annotations?.[a]).length, `${where} annotations.${a}`).toBeGreaterThan(20);
        }
        // Templates reference labels the expression keeps.
        for (const m of String(r.annotations?.summary).matchAll(/\$labels\.(\w+)/g)) {
          const kept = /by \(([^)]*)\)/.exec(String(r.expr))?.[1] ?? "";
          const ok =
            kept
              .split(",")
              .map((s) => s.trim())
              .includes(m[1]!) || /^up\{/.test(String(r.expr));
          expect(ok, `${where} summary uses $labels.${m[1]} that the expression aggregates away`).toBe(true);
        }
      }
    }
    // The concerns an operator must be paged or warned about, each covered.
    const exprOf = (alert: string) =>
      String(rules.groups.flatMap((g) => g.rules).find((r) => r.alert === alert)?.expr ?? "");
    expect(exprOf("JetmeshConsumerLagHigh")).toContain("jetmesh_consumer_pending_messages");
    expect(exprOf("JetmeshDlqGrowing")).toContain("jetmesh_dlq_parked_total");
    expect(exprOf("JetmeshRedeliveryRateHigh")).toContain("jetmesh_redeliveries_total");
    expect(exprOf("JetmeshStageErrorRateHigh")).toMatch(/outcome=~"retried\|parked"/);
    expect(exprOf("JetmeshGatewayErrorRateHigh")).toMatch(/status=~"5\.\."/);
    expect(exprOf("JetmeshHandlerLatencyP99High")).toContain("histogram_quantile(0.99");
    expect(exprOf("JetmeshGatewayLatencyP99High")).toContain("histogram_quantile(0.99");
    expect(exprOf("JetmeshStageNoProgress")).toContain("jetmesh_messages_processed_total");
  });

  it("observability - Prometheus scrapes every service's /metrics on the port docker-compose gives it, and loads the rules", () => {
    const prom = parseYaml(read(`${OBS}/prometheus/prometheus.yml`)) as {
      rule_files: string[];
      scrape_configs: {
        job_name: string;
        metrics_path?: string;
        dns_sd_configs?: { names: string[]; port: number }[];
        static_configs?: { targets: string[] }[];
      }[];
    };
    expect(prom.rule_files).toContain("alerts.yml");
    const compose = parseYaml(read("docker-compose.yml")) as {
      services: Record<string, { environment?: Record<string, string> }>;
    };
    for (const service of PIPELINE) {
      const job = prom.scrape_configs.find((j) => j.job_name === `jetmesh-${service}`);
      expect(job, service).toBeDefined();
      expect(job?.metrics_path ?? "/metrics").toBe("/metrics");
      const env = compose.services[service]?.environment ?? {};
      // The gateway serves /metrics on its ops port only, never on the API port.
      const port = Number(service === "gateway" ? env.GATEWAY_OPS_PORT : env.HTTP_PORT);
      expect(job?.dns_sd_configs?.[0]).toEqual(expect.objectContaining({ names: [service], port }));
    }
  });

  it("observability - the collector receives OTLP where services send it, and every pipeline component is defined", () => {
    const col = parseYaml(read(`${OBS}/otel-collector.yaml`)) as {
      receivers: Record<string, { protocols?: { http?: { endpoint: string } } }>;
      processors: Record<string, unknown>;
      exporters: Record<string, unknown>;
      extensions?: Record<string, unknown>;
      service: {
        extensions?: string[];
        pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }>;
      };
    };
    const compose = parseYaml(read("docker-compose.yml")) as {
      "x-stage-env": Record<string, string>;
    };
    const endpoint = new URL(compose["x-stage-env"].OTEL_EXPORTER_OTLP_ENDPOINT!);
    expect(col.receivers.otlp?.protocols?.http?.endpoint).toBe(`0.0.0.0:${endpoint.port}`);
    const traces = col.service.pipelines.traces;
    expect(traces).toBeDefined();
    for (const r of traces!.receivers) expect(col.receivers, r).toHaveProperty([r]);
    for (const p of traces!.processors ?? []) expect(col.processors, p).toHaveProperty([p]);
    for (const e of traces!.exporters) expect(col.exporters, e).toHaveProperty([e]);
    for (const x of col.service.extensions ?? []) expect(col.extensions, x).toHaveProperty([x]);
    expect(traces!.processors).toContain("batch");
    expect(traces!.processors?.[0]).toBe("memory_limiter");
  });

  it("observability - the rules files and dashboards checked below are the ones deployed", () => {
    expect(RULE_FILES).toEqual(
      expect.arrayContaining(["alerts.yml", "reconciler-alerts.yml", "slo-alerts.yml", "infra-alerts.yml"]),
    );
    expect(DASHBOARDS).toEqual(
      expect.arrayContaining(["jetmesh-pipeline.json", "jetmesh-reconciler.json", "jetmesh-infra.json"]),
    );
  });

  it.each(DASHBOARDS)(
    "observability - %s parses, every panel has queries, and panel ids are unique",
    (file) => {
      const d = loadDashboard(file);
      expect(`${d.uid}.json`).toBe(file);
      const panels = allPanels(d.panels);
      expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
      for (const p of panels) {
        expect(p.gridPos, p.title).toBeDefined();
        if (p.type === "row") continue;
        expect(p.targets?.length, p.title).toBeGreaterThan(0);
        for (const t of p.targets ?? []) {
          expect(typeof t.expr, p.title).toBe("string");
          expect(balanced(t.expr!), `brackets of "${p.title}"`).toBe(true);
        }
      }
    },
  );
});

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  const stack: string[] = [];
  for (const c of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ("([{".includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return false;
  }
  return stack.length === 0;
}

describe("metrics the services export", { timeout: 120_000 }, () => {
  let pipeline: Pipeline;
  const TAG = Math.random().toString(36).slice(2, 8);
  const scrape = async () => {
    const out = {} as Record<PipelineService, { families: Map<string, Family>; samples: Sample[] }>;
    for (const s of PIPELINE) {
      const r = await httpGet(`${pipeline.services[s].opsUrl}/metrics`);
      expect(r.status, s).toBe(200);
      out[s] = parseExposition(r.body);
    }
    return out;
  };
  let first: Awaited<ReturnType<typeof scrape>>;
  const transfers: string[] = [];
  const traffic = async (n: string) => {
    const submit = async (
      body: { from: string; to: string; amountMinor: number; currency?: string },
      key: string,
    ) => {
      const r = await pipeline.submit({ currency: "EUR", ...body }, `${key}-${TAG}-${n}`);
      expect(r.status).toBe(202);
      transfers.push(r.body.transferId);
      return r.body;
    };
    const alice = `acc-${TAG}${n}a`;
    await submit({ from: "external", to: alice, amountMinor: 10_000 }, "fund");
    await submit({ from: alice, to: `bank:${TAG}-${n}`, amountMinor: 100 }, "payout");
    await submit({ from: alice, to: `acc-${TAG}${n}b`, amountMinor: 100, currency: "XXX" }, "rejected");
    await submit({ from: alice, to: `acc-${TAG}${n}b`, amountMinor: 50_000 }, "declined");
    // Reads of unknown resources and paths: ids must not become label values.
    const auth = { headers: { authorization: `Bearer ${pipeline.apiKeys.operator}` } };
    await fetch(`${pipeline.services.gateway.url}/v1/transfers/${TAG}-${n}-missing`, auth);
    await fetch(`${pipeline.services.gateway.url}/v1/accounts/acc-${TAG}${n}never`, auth);
    await fetch(`${pipeline.services.gateway.url}/no/such/${TAG}${n}`, auth);
  };
  /** Every durable consumer of the pipeline, as `stage` label → input streams. */
  const consumers: Record<PipelineService, Record<string, string[]>> = {
    gateway: { "gateway-status": ["INGRESS", "VALIDATION", "RISK", "LEDGER", "PAYOUTS"] },
    validator: { validator: ["INGRESS"] },
    risk: { risk: ["VALIDATION"] },
    ledger: { ledger: ["RISK", "PAYOUTS"] },
    payout: { payout: ["LEDGER"] },
  };
  const settled = async (payoutInputs: number) => {
    // Payout saw what it should, and every consumer's supervisor has since polled a drained consumer.
    await waitFor(
      async () => {
        const m = await scrape();
        const payouts = m.payout.samples
          .filter((s) => s.name === "jetmesh_messages_processed_total" && s.labels.stage === "payout")
          .reduce((n, s) => n + s.value, 0);
        const drained = PIPELINE.every((svc) =>
          Object.entries(consumers[svc]).every(([stage, streams]) =>
            streams.every((stream) =>
              ["jetmesh_consumer_pending_messages", "jetmesh_consumer_ack_pending_messages"].every((name) =>
                m[svc].samples.some(
                  (x) =>
                    x.name === name &&
                    x.labels.stage === stage &&
                    x.labels.stream === stream &&
                    x.value === 0,
                ),
              ),
            ),
          ),
        );
        return payouts >= payoutInputs && drained ? m : undefined;
      },
      { what: "the pipeline to settle", timeoutMs: 60_000, intervalMs: 250 },
    );
  };

  beforeAll(async () => {
    pipeline = await startPipeline();
    await traffic("1");
    // Fund and payout reach payout; the rejected (validator) and declined (ledger) ones end earlier.
    await settled(2);
    first = await scrape();
  }, 300_000);
  afterAll(async () => {
    await pipeline?.close();
    await stopAllProcesses();
  }, 60_000);

  it("observability - every metric the alert rules and the dashboards reference is exported by a service or the reconciler", async () => {
    const exported = new Set<string>();
    const add = (families: Iterable<Family>) => {
      for (const f of families) for (const n of sampleNamesOf(f)) exported.add(n);
    };
    for (const s of PIPELINE) add(first[s].families.values());
    const reconciler = await httpGet(`${pipeline.reconciler.opsUrl}/metrics`);
    expect(reconciler.status).toBe(200);
    add(parseExposition(reconciler.body).families.values());
    // Its brokers' health is exported: the infra dashboard's and rules' names are checked on it.
    for (const name of ["jetmesh_redis_up", "jetmesh_nats_stream_leader", "jetmesh_nats_server_healthy"])
      expect(exported, name).toContain(name);
    const refs = referencedMetrics();
    expect(refs.size).toBeGreaterThan(10);
    const missing = [...refs].filter(([name]) => !exported.has(name) && !SYNTHETIC.has(name));
    expect(
      missing.map(([name, where]) => `${name} (${[...new Set(where)].join(", ")})`),
      "referenced but exported by no service",
    ).toEqual([]);
  });

  it("observability - every stage exports its per-stage metrics with samples after handling traffic", () => {
    const has = (s: PipelineService, name: string, labels: Record<string, string>, min = 0) =>
      first[s].samples.some(
        (x) =>
          x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v) && x.value >= min,
      );
    for (const stage of ["validator", "risk", "ledger", "payout"] as const) {
      const l = { stage };
      expect(has(stage, "jetmesh_messages_processed_total", { stage, outcome: "acked" }, 1), stage).toBe(
        true,
      );
      // Created at 0 with the stage, so that increase() sees the first one.
      for (const outcome of ["retried", "parked", "duplicate"])
        expect(
          has(stage, "jetmesh_messages_processed_total", { stage, outcome }),
          `${stage} ${outcome}`,
        ).toBe(true);
      expect(has(stage, "jetmesh_dlq_parked_total", { stage, reason: "max_deliver" }), stage).toBe(true);
      expect(has(stage, "jetmesh_redeliveries_total", l), stage).toBe(true);
      expect(has(stage, "jetmesh_duplicates_dropped_total", { stage, layer: "idempotency" }), stage).toBe(
        true,
      );
      expect(has(stage, "jetmesh_handler_duration_seconds_count", l, 1), stage).toBe(true);
      expect(has(stage, "jetmesh_event_age_seconds_count", l, 1), stage).toBe(true);
      expect(has(stage, "jetmesh_publish_duration_seconds_count", l, 1), stage).toBe(true);
      expect(has(stage, "jetmesh_in_flight_messages", l), stage).toBe(true);
      expect(has(stage, "jetmesh_consumer_pending_messages", l), stage).toBe(true);
      expect(has(stage, "jetmesh_consumer_ack_pending_messages", l), stage).toBe(true);
      expect(has(stage, "jetmesh_last_progress_timestamp_seconds", l, 1), stage).toBe(true);
      expect(has(stage, "process_resident_memory_bytes", {}, 1), stage).toBe(true);
    }
    const gw = (name: string, labels: Record<string, string>, min = 0) => has("gateway", name, labels, min);
    expect(
      gw("jetmesh_http_requests_total", { route: "/v1/transfers", method: "POST", status: "202" }, 4),
    ).toBe(true);
    expect(
      gw("jetmesh_http_request_duration_seconds_count", { route: "/v1/transfers", method: "POST" }, 4),
    ).toBe(true);
    expect(gw("jetmesh_publish_duration_seconds_count", { stage: "gateway" }, 4)).toBe(true);
  });

  it("observability - exported names and labels follow Prometheus conventions", () => {
    for (const s of PIPELINE) {
      for (const f of first[s].families.values()) {
        if (!f.name.startsWith("jetmesh_")) continue;
        const where = `${s}: ${f.name}`;
        expect(f.name, where).toMatch(/^jetmesh_[a-z][a-z0-9_]*[a-z0-9]$/);
        expect(f.help.length, `${where} has HELP`).toBeGreaterThan(10);
        if (f.type === "counter") expect(f.name, where).toMatch(/_total$/);
        else expect(f.name, where).not.toMatch(/_total$/);
        // Base units in the name: seconds and bytes, never ms.
        expect(f.name, where).not.toMatch(/_(ms|millis|milliseconds|minutes|kb|mb)(_|$)/);
        if (f.type === "histogram") expect(f.name, where).toMatch(/_(seconds|bytes)$/);
      }
      for (const x of first[s].samples) {
        if (!x.name.startsWith("jetmesh_")) continue;
        for (const label of Object.keys(x.labels)) {
          expect(label, `${s}: ${x.name}`).toMatch(/^[a-z][a-z0-9_]*$/);
          expect(UNBOUNDED_LABELS, `${s}: ${x.name} labelled ${label}`).not.toContain(label);
        }
      }
    }
  });

  it("observability - label values stay bounded: more transfers, ids and paths add no series", async () => {
    const series = (m: typeof first) =>
      new Set(
        PIPELINE.flatMap((s) =>
          m[s].samples
            .filter((x) => x.name.startsWith("jetmesh_"))
            .map((x) => `${s} ${x.name}${JSON.stringify(Object.entries(x.labels).sort())}`),
        ),
      );
    await traffic("2");
    await traffic("3");
    await settled(6);
    const later = await scrape();
    const before = series(first);
    const added = [...series(later)].filter((k) => !before.has(k));
    expect(added, "series that appeared with more of the same traffic").toEqual([]);
    const routes = new Set(
      later.gateway.samples
        .filter((x) => x.name === "jetmesh_http_requests_total")
        .map((x) => x.labels.route),
    );
    for (const r of routes)
      expect([
        "/v1/transfers",
        "/v1/transfers/:id",
        "/v1/accounts/:id",
        "/readyz",
        "/healthz",
        "/metrics",
        "unmatched",
      ]).toContain(r);
    const text = PIPELINE.map((s) => JSON.stringify(later[s].samples.map((x) => x.labels))).join("\n");
    for (const id of transfers) expect(text).not.toContain(id);
    expect(text).not.toContain(TAG);
  });
});
