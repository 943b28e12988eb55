import { fileURLToPath } from "node:url";
import { provisionStreams } from "@jetmesh/stage";
import { bundleOf, freePort, spawnProcess, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, logger, startInfra, transfer } from "./test-support.ts";

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

  it("gateway - the start command serves the API and /readyz, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const child = await spawnProcess({
      name: "gateway",
      command: process.execPath,
      args: [bundleOf(fileURLToPath(new URL("./main.ts", import.meta.url)))],
      cwd: serviceDir,
      env: {
        NATS_URL: infra.nats.url,
        REDIS_URL: infra.redisServer.url,
        GATEWAY_PORT: String(port),
        LOG_LEVEL: "info",
        OTEL_SDK_DISABLED: "true",
      },
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, {
      what: "gateway ready",
      timeoutMs: 30_000,
    });
    const res = await fetch(`${base}/v1/transfers`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "k-main" },
      body: JSON.stringify(transfer),
    });
    expect(res.status).toBe(202);
    const { transferId } = (await res.json()) as { transferId: string };
    // the in-process projection picks up what the gateway published
    await waitFor(async () => (await fetch(`${base}/v1/transfers/${transferId}`)).status === 200, {
      what: "status of the transfer",
    });
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    const exit = await child.stop(10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(child.lines().some((l) => l.includes('"msg":"stopped"'))).toBe(true);
  });
});
