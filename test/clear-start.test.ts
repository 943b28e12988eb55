import { bundleOf, freePort, httpGet, spawnProcess, startNats, stopAllProcesses } from "@jetmesh/testkit";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeGatewaySecrets } from "@jetmesh/mesh";
import { afterAll, describe, expect, it } from "vitest";

// Issue 17, "a clear start": what an operator sees when a service cannot start, or cannot
// reach its servers yet. Every service runs as deployed: its bundle with plain node.
const SERVICES = ["validator", "risk", "ledger", "payout", "gateway", "reconciler"] as const;
const main = (s: string) => bundleOf(`services/${s}/src/main.ts`);
const quiet = { LOG_LEVEL: "info", OTEL_SDK_DISABLED: "true" };

afterAll(async () => {
  await stopAllProcesses();
});

describe("clear start", () => {
  it("start - every service answers --help (its settings and ports) and --version, and exits 0", async () => {
    for (const s of SERVICES) {
      const help = await spawnProcess({ name: `${s}-help`, command: "node", args: [main(s), "--help"] });
      expect(await help.exited, s).toEqual({ code: 0, signal: null });
      const text = help.lines().join("\n");
      expect(text, s).toMatch(new RegExp(`^${s} \\d+\\.\\d+\\.\\d+`));
      expect(text, s).toContain("NATS_URL");
      expect(text, s).toMatch(/^Port \w+: \w+_PORT, default \d+\.$/m);
      const version = await spawnProcess({
        name: `${s}-version`,
        command: "node",
        args: [main(s), "--version"],
      });
      expect(await version.exited, s).toEqual({ code: 0, signal: null });
      expect(version.lines(), s).toEqual(["0.1.0"]);
    }
  });

  it("start - a bad environment prints one readable block (each bad key, the value given, what is allowed) and exits 2 without a stack trace", async () => {
    const p = await spawnProcess({
      name: "validator-bad-env",
      command: "node",
      args: [main("validator")],
      env: { ...quiet, JETMESH_MAX_IN_FLIGHT: "zero", LOG_LEVEL: "loud", HTTP_PORT: "99999" },
    });
    expect(await p.exited).toEqual({ code: 2, signal: null });
    const lines = p.lines();
    expect(lines[0]).toBe("validator: refusing to start, 3 settings to fix:");
    expect(lines).toContain(
      '  - JETMESH_MAX_IN_FLIGHT ("zero"): expected integer; allowed: integer >= 1, <= 10000',
    );
    expect(lines.find((l) => l.startsWith('  - LOG_LEVEL ("loud")'))).toMatch(/allowed: "fatal" \| "error"/);
    expect(lines.find((l) => l.startsWith("  - HTTP_PORT"))).toMatch(
      /\("99999"\): .*; allowed: integer >= 0, <= 65535$/,
    );
    expect(lines.filter((l) => /^\s+at /.test(l))).toEqual([]);
    const unknown = await spawnProcess({
      name: "risk-flag",
      command: "node",
      args: [main("risk"), "--fast"],
    });
    expect(await unknown.exited).toEqual({ code: 2, signal: null });
    expect(unknown.lines()).toEqual(["risk: unknown option --fast; try --help"]);
  });

  it("start - a bad Sentinel setting (REDIS_SENTINELS without a port, no REDIS_SENTINEL_NAME) is the same readable block and exit 2", async () => {
    const p = await spawnProcess({
      name: "ledger-bad-sentinel",
      command: "node",
      args: [main("ledger")],
      env: { ...quiet, REDIS_SENTINELS: "127.0.0.1:26379,sentinel-2" },
    });
    expect(await p.exited).toEqual({ code: 2, signal: null });
    const lines = p.lines();
    expect(lines[0]).toBe("ledger: refusing to start, 1 setting to fix:");
    expect(lines[1]).toBe(
      '  - REDIS_SENTINELS ("127.0.0.1:26379,sentinel-2"): wrong format; allowed: comma-separated host:port, e.g. 10.0.0.5:26379,10.0.0.6:26379',
    );
    const noName = await spawnProcess({
      name: "payout-sentinel-no-name",
      command: "node",
      args: [main("payout")],
      env: { ...quiet, REDIS_SENTINELS: "127.0.0.1:26379" },
    });
    expect(await noName.exited).toEqual({ code: 2, signal: null });
    expect(noName.lines()).toContain(
      "  - REDIS_SENTINEL_NAME (unset): REDIS_SENTINELS needs the name the sentinels monitor",
    );
    expect([...lines, ...noName.lines()].filter((l) => /^\s+at /.test(l))).toEqual([]);
  });

  it("start - a stage started while NATS and Redis are away logs each attempt (a password in a URL masked), answers /healthz, says in /readyz what it waits for, and connects once NATS comes", async () => {
    const [natsPort, redisPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    const p = await spawnProcess({
      name: "validator-no-servers",
      command: "node",
      args: [main("validator")],
      env: {
        ...quiet,
        NATS_URL: `nats://127.0.0.1:${natsPort}`,
        REDIS_URL: `redis://validator:s3cret@127.0.0.1:${redisPort}`,
        HTTP_PORT: String(httpPort),
      },
    });
    const attempt = await p.waitForLine(/nats connection attempt failed/, 15_000);
    expect(attempt).toContain(`"nats":"nats://127.0.0.1:${natsPort}"`);
    expect(attempt).toMatch(/"attempt":1/);
    expect(attempt).toMatch(/"err":"[^"]+"/);
    await p.waitForLine(
      /"attempt":2.*nats connection attempt failed|nats connection attempt failed.*"attempt":2/,
      15_000,
    );
    const health = await httpGet(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);
    const ready = await httpGet(`http://127.0.0.1:${httpPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain(`nats at nats://`);
    expect(p.lines().join("\n")).not.toContain("s3cret");

    // NATS arrives on that port: the stage connects and says so; Redis is still away.
    const nats = await startNats({ port: natsPort });
    await p.waitForLine(/nats connected/, 20_000);
    const redisDown = await p.waitForLine(/redis connection attempt failed/, 20_000);
    expect(redisDown).toContain(`redis://validator:***@127.0.0.1:${redisPort}`);
    expect(p.lines().join("\n")).not.toContain("s3cret");
    await p.stop();
    await nats.stop();
  });
});

describe("clear start of the gateway", () => {
  it("start - the gateway started while NATS is away logs each attempt, answers /healthz on its ops port and says in /readyz it waits for nats", async () => {
    const [natsPort, apiPort, opsPort] = [await freePort(), await freePort(), await freePort()];
    const secrets = writeGatewaySecrets(await mkdtemp(join(tmpdir(), "jetmesh-start-gateway-")));
    const p = await spawnProcess({
      name: "gateway-no-nats",
      command: "node",
      args: [main("gateway")],
      env: {
        ...quiet,
        NATS_URL: `nats://127.0.0.1:${natsPort}`,
        REDIS_URL: `redis://gateway:s3cret@127.0.0.1:${await freePort()}`,
        GATEWAY_PORT: String(apiPort),
        GATEWAY_OPS_PORT: String(opsPort),
        GATEWAY_CLIENTS_FILE: secrets.clientsFile,
        GATEWAY_ID_SECRETS_FILE: secrets.idSecretsFile,
      },
    });
    await p.waitForLine(/nats connection attempt failed/, 15_000);
    expect((await httpGet(`http://127.0.0.1:${opsPort}/healthz`)).status).toBe(200);
    const ready = await httpGet(`http://127.0.0.1:${opsPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({
      ready: false,
      checks: { gateway: { ok: false, waiting_for: `nats at nats://127.0.0.1:${natsPort}` } },
    });
    await p.stop();
  });
});

describe("tools", () => {
  // The operators' and developers' commands, run as their scripts run them.
  const TOOLS: Record<string, string[]> = {
    jetmesh: ["packages/ops/bin/jetmesh.mjs"],
    "jetmesh-access": ["packages/access/bin/jetmesh-access.mjs"],
    "jetmesh-sim": ["packages/sim/dist/cli.mjs"],
    "jetmesh-mesh": ["--import", "tsx", "packages/mesh/src/main.ts"],
    "jetmesh-chaos": ["--import", "tsx", "packages/chaos/src/cli.ts"],
    bench: ["--import", "tsx", "bench/src/main.ts"],
  };
  // Twelve node starts, half of them through tsx: about 15 s on a quiet machine, over 60 s
  // (the default here) when the machine is loaded. The test is about what they print, not speed.
  it("tools - every tool answers --help (usage) and --version, and exits 0", {
    timeout: 240_000,
  }, async () => {
    const cwd = join(import.meta.dirname, "..");
    for (const [name, args] of Object.entries(TOOLS)) {
      const help = await spawnProcess({
        name: `${name}-help`,
        command: "node",
        args: [...args, "--help"],
        cwd,
      });
      expect(await help.exited, name).toEqual({ code: 0, signal: null });
      expect(help.lines().join("\n"), name).toMatch(new RegExp(`Usage: ${name}`));
      const version = await spawnProcess({
        name: `${name}-version`,
        command: "node",
        args: [...args, "--version"],
        cwd,
      });
      expect(await version.exited, name).toEqual({ code: 0, signal: null });
      expect(version.lines(), name).toEqual(["0.1.0"]);
    }
  });
});
