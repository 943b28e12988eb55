import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { currentSchemaSet, REGISTRY_BUCKET, registryDocuments } from "@jetmesh/contracts/evolution";
import { provisionStreams, publishSchemaRegistry } from "@jetmesh/stage/internal";
import { bundleOf, freePort, spawnProcess, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, type Infra, logger, startInfra, transfer, writeGatewaySecrets } from "./test-support.ts";

const serviceDir = fileURLToPath(new URL("..", import.meta.url));

describe("gateway process", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
    // The deploy step: the status projection reads every pipeline stream, LEDGER included.
    await provisionStreams(infra.jsm, { replicas: 1, logger });
  });
  afterAll(async () => {
    await infra?.close();
    await stopAllProcesses();
  });

  const start = async (env: Record<string, string>) =>
    spawnProcess({
      name: "gateway",
      command: process.execPath,
      args: [bundleOf(fileURLToPath(new URL("./main.ts", import.meta.url)))],
      cwd: serviceDir,
      env: {
        NATS_URL: infra.nats.url,
        REDIS_URL: infra.redisServer.url,
        LOG_LEVEL: "info",
        OTEL_SDK_DISABLED: "true",
        ...env,
      },
    });

  it("gateway - the start command serves the API and, on its own port, /readyz; exits 0 on SIGTERM", async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    const secrets = writeGatewaySecrets(mkdtempSync(join(tmpdir(), "gateway-secrets-")));
    const child = await start({
      GATEWAY_PORT: String(port),
      GATEWAY_OPS_PORT: String(opsPort),
      GATEWAY_CLIENTS_FILE: secrets.clientsFile,
      GATEWAY_ID_SECRETS_FILE: secrets.idSecretsFile,
    });
    const base = `http://127.0.0.1:${port}`;
    const ops = `http://127.0.0.1:${opsPort}`;
    await waitFor(async () => (await fetch(`${ops}/readyz`)).status === 200, {
      what: "gateway ready",
      timeoutMs: 30_000,
    });
    const post = (headers: Record<string, string>) =>
      fetch(`${base}/v1/transfers`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": "k-main", ...headers },
        body: JSON.stringify(transfer),
      });
    expect((await post({})).status).toBe(401);
    const res = await post(bearer());
    expect(res.status).toBe(202);
    const { transferId } = (await res.json()) as { transferId: string };
    // the in-process projection picks up what the gateway published
    await waitFor(
      async () => (await fetch(`${base}/v1/transfers/${transferId}`, { headers: bearer() })).status === 200,
      { what: "status of the transfer" },
    );
    expect((await fetch(`${ops}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    const exit = await child.stop(10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(child.lines().some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });

  it("gateway - refuses to start with world-readable secret files, or in production without NATS and Redis credentials", async () => {
    const open = writeGatewaySecrets(mkdtempSync(join(tmpdir(), "gateway-secrets-")), 0o644);
    const loose = await start({
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_OPS_PORT: String(await freePort()),
      GATEWAY_CLIENTS_FILE: open.clientsFile,
      GATEWAY_ID_SECRETS_FILE: open.idSecretsFile,
    });
    expect((await loose.exited).code).not.toBe(0);
    expect(loose.lines().join("\n")).toMatch(/GATEWAY_CLIENTS_FILE.*(readable|mode)/);

    const secrets = writeGatewaySecrets(mkdtempSync(join(tmpdir(), "gateway-secrets-")));
    const prod = await start({
      JETMESH_PRODUCTION: "true",
      GATEWAY_ACCEPT_UNTIMED_KEYS: "false",
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_OPS_PORT: String(await freePort()),
      GATEWAY_CLIENTS_FILE: secrets.clientsFile,
      GATEWAY_ID_SECRETS_FILE: secrets.idSecretsFile,
    });
    expect((await prod.exited).code).not.toBe(0);
    const out = prod.lines().join("\n");
    expect(out).toContain("production: NATS needs credentials");
    expect(out).toContain("production: Redis needs a password");
  });

  it("gateway - refuses to start writing a transfers.requested version the schema registry has not released", async () => {
    // The registry's last release taught readers v1 only; this build writes v2.
    const set = currentSchemaSet();
    const t = set.types["transfers.requested"]!;
    const old = {
      types: { ...set.types, "transfers.requested": { ...t, writes: 1, versions: { 1: t.versions["1"]! } } },
    };
    await publishSchemaRegistry(infra.js, registryDocuments(set, { release: "before-v2", ...old }));
    try {
      const secrets = writeGatewaySecrets(mkdtempSync(join(tmpdir(), "gateway-secrets-")));
      const child = await start({
        GATEWAY_PORT: String(await freePort()),
        GATEWAY_OPS_PORT: String(await freePort()),
        GATEWAY_CLIENTS_FILE: secrets.clientsFile,
        GATEWAY_ID_SECRETS_FILE: secrets.idSecretsFile,
      });
      expect((await child.exited).code).toBe(2);
      expect(child.lines().join("\n")).toMatch(
        /produces transfers\.requested@2 \/: v2 is not released in the registry \(released: v1, release before-v2\)/,
      );
    } finally {
      await infra.jsm.streams.delete(`KV_${REGISTRY_BUCKET}`);
    }
  });
});
