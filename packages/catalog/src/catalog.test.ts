import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PipelineStreams, StreamNames, TeamStreams } from "@jetmesh/contracts";
import { afterEach, describe, expect, it } from "vitest";
import { CatalogError, loadCatalog } from "./catalog.ts";
import { readManifests } from "./read.mjs";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A services/ folder holding `manifests` (each in its own folder, with a package.json). */
function servicesWith(...manifests: Record<string, unknown>[]): string {
  const root = mkdtempSync(join(tmpdir(), "jetmesh-catalog-"));
  dirs.push(root);
  for (const m of manifests) {
    const dir = join(root, String(m.name));
    mkdirSync(dir);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `@jetmesh/${m.name}` }));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
  }
  return root;
}

const port = { name: "http", env: "HTTP_PORT", default: 8085, paths: ["/healthz", "/readyz", "/metrics"] };
const notifier = {
  name: "notifier",
  kind: "stage",
  inputs: [{ stream: "LEDGER", durable: "notifier", types: ["ledger.posted"] }],
  outputs: [],
  ports: [port],
};

describe("catalog", () => {
  it("catalog - this checkout's services, in pipeline order, checked against the contracts", () => {
    const c = loadCatalog();
    // Services that write no pipeline stream (the bank, the reconciler's findings) come first,
    // then the reference services, then the teams' stages (the owners of the contracts' TeamStreams).
    const teams = Object.values(TeamStreams as Record<string, { owner: string }>).map((t) => t.owner);
    expect(c.names).toEqual([
      "bank-sim",
      "reconciler",
      "gateway",
      "validator",
      "risk",
      "ledger",
      "payout",
      ...teams,
    ]);
    expect(c.stages.map((s) => s.name)).toEqual([
      "reconciler",
      "gateway",
      "validator",
      "risk",
      "ledger",
      "payout",
      ...teams,
    ]);
    expect(c.streams).toEqual([...PipelineStreams, StreamNames.Dlq]);
    const gateway = c.service("gateway");
    expect([gateway.portEnv, gateway.opsPortEnv, gateway.readyPath, gateway.metricsPort]).toEqual([
      "GATEWAY_PORT",
      "GATEWAY_OPS_PORT",
      "/readyz",
      8090,
    ]);
    const bank = c.service("bank-sim");
    expect([bank.jetmesh, bank.readyPath, bank.metricsPort]).toEqual([false, "/healthz", undefined]);
    expect(c.service("ledger").bundles).toEqual([
      "services/ledger/src/main.ts",
      "services/ledger/src/rebuild.ts",
    ]);
    expect(c.service("risk")).toMatchObject({ entry: "services/risk/src/main.ts", outputs: ["RISK"] });
    expect(() => c.service("nobody")).toThrow(CatalogError);
  });

  it("catalog - a new stage is read from its own folder alone", () => {
    const c = loadCatalog(servicesWith(notifier));
    expect(c.service("notifier")).toMatchObject({
      entry: "services/notifier/src/main.ts",
      portEnv: "HTTP_PORT",
      port: 8085,
      readyPath: "/readyz",
      jetmesh: true,
      inputs: [{ stream: "LEDGER", durable: "notifier" }],
    });
    expect(c.streams).toEqual(["LEDGER", "DLQ"]);
  });

  it("catalog - a manifest naming a stream the contracts do not know fails, naming file, field and stream", () => {
    const dir = servicesWith({ ...notifier, outputs: [{ stream: "NOTICES", types: ["notice.sent"] }] });
    expect(() => loadCatalog(dir)).toThrow(CatalogError);
    expect(() => loadCatalog(dir)).toThrow(
      /notifier\/manifest\.json: outputs\[0\]\.stream "NOTICES" is not a stream of @jetmesh\/contracts/,
    );
  });

  it("catalog - a manifest naming an event type its stream does not store fails", () => {
    const dir = servicesWith({
      ...notifier,
      inputs: [{ stream: "LEDGER", durable: "n", types: ["transfers.scored"] }],
    });
    expect(() => loadCatalog(dir)).toThrow(
      /inputs\[0\] names transfers\.scored, which stream LEDGER does not store/,
    );
  });

  it("catalog - a service folder without a manifest fails, naming the folder", () => {
    const dir = servicesWith(notifier);
    mkdirSync(join(dir, "auditor"));
    writeFileSync(join(dir, "auditor", "package.json"), "{}");
    expect(() => readManifests(dir)).toThrow(/auditor has no manifest\.json/);
    expect(() => loadCatalog(dir)).toThrow(/auditor has no manifest\.json/);
  });

  it("catalog - a manifest whose name is not its folder's, or without ports, fails", () => {
    const misnamed = servicesWith(notifier);
    writeFileSync(
      join(misnamed, "notifier", "manifest.json"),
      JSON.stringify({ ...notifier, name: "notify" }),
    );
    expect(() => loadCatalog(misnamed)).toThrow(/name "notify" must be its folder's, "notifier"/);
    expect(() => loadCatalog(servicesWith({ ...notifier, ports: [] }))).toThrow(
      /notifier\/manifest\.json: no ports/,
    );
  });
});
