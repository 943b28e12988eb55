import { existsSync, readFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { afterAll, describe, expect, test } from "vitest";
import {
  bundleOf,
  freePort,
  liveProcessIds,
  spawnProcess,
  startFaultProxy,
  startNats,
  startNatsCluster,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "./index.ts";

/** Unique names so suites can share a machine. */
const unique = (prefix: string): string =>
  `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;

/** True when `pid` exists and is not a zombie (orphans are reaped by pid 1, sometimes late). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ...": the state letter follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A raw socket that collects everything it receives. */
async function rawClient(port: number): Promise<{ socket: Socket; received: () => string }> {
  const socket = tcpConnect({ host: "127.0.0.1", port });
  let data = "";
  socket.on("data", (chunk: Buffer) => {
    data += chunk.toString("utf8");
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received: () => data };
}

/** The part of `/jsz?accounts=true&streams=true` the cluster test reads (nats-server 2.9). */
interface JszStreams {
  account_details?: { stream_detail?: { name: string; state: { messages: number } }[] }[];
}

function localMessages(jsz: JszStreams, stream: string): number | undefined {
  for (const account of jsz.account_details ?? []) {
    const found = account.stream_detail?.find((s) => s.name === stream);
    if (found !== undefined) return found.state.messages;
  }
  return undefined;
}

afterAll(async () => {
  await stopAllProcesses();
});

describe("testkit", () => {
  test("testkit - freePort never hands out the same port twice", async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(port).toBeGreaterThan(0);
  });

  test("testkit - waitFor returns the first usable value and times out naming what and the last error", async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? `done after ${calls}` : undefined), { intervalMs: 5 });
    expect(value).toBe("done after 3");

    const failing = waitFor(
      () => {
        throw new Error("still broken");
      },
      { timeoutMs: 100, intervalMs: 10, what: "the broken thing" },
    );
    await expect(failing).rejects.toThrow(/timed out waiting for the broken thing.*still broken/);
  });

  test("testkit - a server that exits during start-up, or never answers ready, fails saying which and why", async () => {
    await expect(startNats({ extraArgs: ["--no-such-flag"] })).rejects.toThrow(
      /^nats-server on 127\.0\.0\.1:\d+ exited during start-up \(code \d+, signal null\)\n--- last log lines ---/,
    );
    // A password the kit does not send: PING answers NOAUTH until the deadline.
    await expect(
      startRedis({ extraArgs: ["--requirepass", "not-the-kits"], readyTimeoutMs: 500 }),
    ).rejects.toThrow(/^redis-server on 127\.0\.0\.1:\d+ not ready within 500 ms \(PING answered -NOAUTH/);
  });

  test("testkit - nats-server starts on a private port, creates a JetStream stream and stores a publish", async () => {
    const server = await startNats();
    try {
      expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
      expect(server.port).not.toBe(4222);
      expect(server.isRunning()).toBe(true);
      expect(isAlive(server.pid)).toBe(true);
      await expect(server.monitor("/healthz?js-enabled-only=true")).resolves.toEqual({ status: "ok" });

      const nc = await connect({ servers: server.url });
      try {
        const jsm = await jetstreamManager(nc);
        const name = unique("TK_START");
        await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File });
        const ack = await jetstream(nc).publish(`${name}.hello`, "hello");
        expect(ack.stream).toBe(name);
        expect(ack.seq).toBe(1);
        const stored = await jsm.streams.getMessage(name, { seq: 1 });
        expect(stored?.string()).toBe("hello");
      } finally {
        await nc.close();
      }
      expect(server.logs().some((line) => line.includes("Server is ready"))).toBe(true);
    } finally {
      await server.stop();
    }
    expect(server.isRunning()).toBe(false);
  });

  test("testkit - nats-server killed with -9 restarts on the same port and keeps file-stored messages", async () => {
    const server = await startNats();
    const name = unique("TK_RESTART");
    try {
      const before = await connect({ servers: server.url });
      try {
        const jsm = await jetstreamManager(before);
        await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File });
        const js = jetstream(before);
        for (let i = 1; i <= 3; i++) await js.publish(`${name}.m`, `message ${i}`);
      } finally {
        await before.close();
      }

      const firstPid = server.pid;
      await server.kill("SIGKILL");
      expect(server.isRunning()).toBe(false);
      expect(isAlive(firstPid)).toBe(false);

      await server.restart();
      expect(server.isRunning()).toBe(true);
      expect(server.pid).not.toBe(firstPid);

      const after = await connect({ servers: server.url });
      try {
        const jsm = await jetstreamManager(after);
        const info = await jsm.streams.info(name);
        expect(info.state.messages).toBe(3);
        expect((await jsm.streams.getMessage(name, { seq: 2 }))?.string()).toBe("message 2");
      } finally {
        await after.close();
      }
      expect(server.logs().some((line) => line.includes("testkit: restarting"))).toBe(true);
    } finally {
      await server.stop();
    }
  });

  test("testkit - a 3-node cluster keeps an R3 stream writable with a node killed, and the node rejoins", async () => {
    const started = Date.now();
    const cluster = await startNatsCluster({ size: 3 });
    const startupMs = Date.now() - started;
    const nc = await connect({ servers: cluster.urls, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    try {
      expect(cluster.nodes.map((n) => n.serverName)).toEqual(["n1", "n2", "n3"]);
      expect(cluster.url).toBe(cluster.urls.join(","));
      expect(new Set(cluster.nodes.map((n) => n.port)).size).toBe(3);
      expect(startupMs).toBeGreaterThan(0);

      const name = unique("TK_R3");
      const jsm = await jetstreamManager(nc);
      const created = await jsm.streams.add({
        name,
        subjects: [`${name}.>`],
        storage: StorageType.File,
        num_replicas: 3,
      });
      expect(created.config.num_replicas).toBe(3);
      const js = jetstream(nc, { timeout: 1_000 });
      for (let i = 0; i < 5; i++) await js.publish(`${name}.m`, `m${i}`, { msgID: `m${i}` });

      // Kill the node this client talks to, so the client must fail over as well.
      const connectedTo = nc.info?.server_name;
      const victim = cluster.nodes.find((n) => n.serverName === connectedTo) ?? cluster.nodes[0]!;
      const victimPid = victim.pid;
      await victim.kill("SIGKILL");
      expect(isAlive(victimPid)).toBe(false);

      for (let i = 5; i < 10; i++) {
        // A publish may time out while the client reconnects or the stream elects a
        // leader; the msgID makes the retry idempotent.
        const ack = await waitFor(() => js.publish(`${name}.m`, `m${i}`, { msgID: `m${i}` }), {
          timeoutMs: 20_000,
          intervalMs: 100,
          what: `publish m${i} with ${victim.serverName} down`,
        });
        expect(ack.seq).toBe(i + 1);
      }
      expect(nc.info?.server_name).not.toBe(victim.serverName);
      expect((await jsm.streams.info(name)).state.messages).toBe(10);

      await victim.restart();
      await cluster.waitForJetStream();
      // The restarted node's own replica catches up with what was written while it was down.
      const caughtUp = await waitFor(
        async () =>
          localMessages(await victim.monitor<JszStreams>("/jsz?accounts=true&streams=true"), name) === 10,
        { timeoutMs: 20_000, intervalMs: 100, what: `${victim.serverName} to catch up on ${name}` },
      );
      expect(caughtUp).toBe(true);
      const info = await jsm.streams.info(name);
      const replicas = info.cluster?.replicas ?? [];
      expect(replicas.length + 1).toBe(3);
    } finally {
      await nc.close();
      await cluster.stop();
    }
    expect(cluster.nodes.every((n) => !n.isRunning())).toBe(true);
  });

  test("testkit - redis-server starts on a private port, flushAll empties it, restart keeps the port", async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
      expect(redis.port).not.toBe(6379);
      expect(await client.ping()).toBe("PONG");
      await client.set("tk:a", "1");
      await client.select(3);
      await client.set("tk:b", "2");
      await redis.flushAll();
      expect(await client.dbsize()).toBe(0);
      await client.select(0);
      expect(await client.dbsize()).toBe(0);

      await client.set("tk:c", "3");
      const firstPid = redis.pid;
      await redis.kill("SIGKILL");
      expect(redis.isRunning()).toBe(false);
      await redis.restart();
      expect(redis.pid).not.toBe(firstPid);
      // Without persistence nothing survives a restart.
      const afterRestart = await waitFor(() => client.get("tk:c").then((v) => ({ v })), {
        timeoutMs: 5_000,
        what: "redis client to reconnect",
      });
      expect(afterRestart.v).toBeNull();
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });

  test("testkit - redis-server with persistence keeps acknowledged writes across kill -9", async () => {
    const redis = await startRedis({ persistence: true });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    try {
      await client.set("tk:kept", "yes");
      await redis.kill("SIGKILL");
      await redis.restart();
      const value = await waitFor(() => client.get("tk:kept").then((v) => v ?? undefined), {
        timeoutMs: 5_000,
        what: "persisted key after restart",
      });
      expect(value).toBe("yes");
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });

  for (const persistence of [false, true]) {
    test(`testkit - redis-server rolled back to a snapshot loses every later write (persistence ${persistence})`, async () => {
      const redis = await startRedis({ persistence });
      const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      try {
        await client.set("tk:before", "1");
        await client.hset("tk:h", "a", "1");
        const snap = await redis.snapshot();
        await client.set("tk:after", "2");
        await client.hset("tk:h", "a", "2", "b", "3");
        await client.del("tk:before");
        const firstPid = redis.pid;
        await redis.rollbackTo(snap);
        expect(redis.pid).not.toBe(firstPid);
        await waitFor(async () => (await client.ping()) === "PONG", { what: "redis after the rollback" });
        expect(await client.get("tk:before")).toBe("1");
        expect(await client.get("tk:after")).toBeNull();
        expect(await client.hgetall("tk:h")).toEqual({ a: "1" });
        // Writes after the rollback land on the old state, and (with persistence) survive a crash.
        await client.set("tk:later", "4");
        if (persistence) {
          await redis.kill("SIGKILL");
          await redis.restart();
          await waitFor(async () => (await client.ping()) === "PONG", { what: "redis after the crash" });
          expect(await client.get("tk:later")).toBe("4");
          expect(await client.get("tk:before")).toBe("1");
        }
      } finally {
        client.disconnect();
        await redis.stop();
      }
    });
  }

  test("testkit - fault proxy forwards redis PING and cut() drops open connections but keeps accepting", async () => {
    const redis = await startRedis();
    const proxy = await startFaultProxy({ targetPort: redis.port });
    const client = new Redis(proxy.url("redis"), { maxRetriesPerRequest: 1, retryStrategy: () => 20 });
    try {
      expect(proxy.url("redis")).toBe(`redis://127.0.0.1:${proxy.port}`);
      expect(await client.ping()).toBe("PONG");
      expect(proxy.connections()).toBe(1);

      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      proxy.cut();
      expect(proxy.connections()).toBe(0);
      await closed;

      // The client reconnects through the same proxy.
      expect(await waitFor(() => client.ping(), { timeoutMs: 5_000, what: "ping after cut" })).toBe("PONG");
      expect(proxy.connections()).toBe(1);
    } finally {
      client.disconnect();
      await proxy.close();
      await redis.stop();
    }
  });

  test("testkit - fault proxy cut() forces a NATS client through it to reconnect", async () => {
    const server = await startNats({ jetstream: false });
    const proxy = await startFaultProxy({ targetPort: server.port });
    const nc = await connect({
      servers: proxy.url("nats"),
      ignoreClusterUpdates: true,
      reconnectTimeWait: 50,
      maxReconnectAttempts: -1,
    });
    try {
      const reconnected = (async () => {
        for await (const status of nc.status()) if (status.type === "reconnect") return status.type;
        return "closed";
      })();
      proxy.cut();
      expect(await reconnected).toBe("reconnect");
      const sub = nc.subscribe("tk.echo", { max: 1 });
      nc.publish("tk.echo", "after cut");
      for await (const msg of sub) expect(msg.string()).toBe("after cut");
      expect(proxy.connections()).toBe(1);
    } finally {
      await nc.close();
      await proxy.close();
      await server.stop();
    }
  });

  test("testkit - fault proxy setSilent drops traffic both ways until turned off", async () => {
    const redis = await startRedis();
    const proxy = await startFaultProxy({ targetPort: redis.port });
    const raw = await rawClient(proxy.port);
    try {
      raw.socket.write("PING\r\n");
      await waitFor(() => raw.received() === "+PONG\r\n", { timeoutMs: 2_000, what: "first PONG" });

      proxy.setSilent(true);
      raw.socket.write("PING\r\n");
      await sleep(300);
      expect(raw.received()).toBe("+PONG\r\n");
      expect(proxy.connections()).toBe(1);

      proxy.setSilent(false);
      raw.socket.write("PING\r\n");
      await waitFor(() => raw.received() === "+PONG\r\n+PONG\r\n", {
        timeoutMs: 2_000,
        what: "PONG after silence",
      });
      // The PING sent during the silence was dropped, not delayed.
      await sleep(100);
      expect(raw.received()).toBe("+PONG\r\n+PONG\r\n");
    } finally {
      raw.socket.destroy();
      await proxy.close();
      await redis.stop();
    }
  });

  test("testkit - fault proxy setLatency delays each direction and keeps order", async () => {
    const redis = await startRedis();
    const proxy = await startFaultProxy({ targetPort: redis.port });
    const raw = await rawClient(proxy.port);
    try {
      const latencyMs = 100;
      proxy.setLatency(latencyMs);
      const started = performance.now();
      raw.socket.write("ECHO a\r\n");
      raw.socket.write("ECHO b\r\n");
      raw.socket.write("ECHO c\r\n");
      await waitFor(() => raw.received().split("\r\n").length >= 7, {
        timeoutMs: 5_000,
        what: "three echoes",
      });
      const elapsed = performance.now() - started;
      expect(raw.received()).toBe("$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
      // Delayed once on the way in and once on the way out. Timers have millisecond
      // granularity, so allow 2 ms of rounding; no upper bound on a shared machine.
      expect(elapsed).toBeGreaterThanOrEqual(2 * latencyMs - 2);

      proxy.reset();
      const fast = performance.now();
      raw.socket.write("PING\r\n");
      await waitFor(() => raw.received().endsWith("+PONG\r\n"), { timeoutMs: 2_000, what: "PONG" });
      expect(performance.now() - fast).toBeLessThan(elapsed);
    } finally {
      raw.socket.destroy();
      await proxy.close();
      await redis.stop();
    }
  });

  test("testkit - fault proxy refuses non-loopback targets and resets new connections while refusing", async () => {
    await expect(startFaultProxy({ targetPort: 80, targetHost: "example.com" })).rejects.toThrow(
      /127\.0\.0\.1/,
    );
    const redis = await startRedis();
    const proxy = await startFaultProxy({ targetPort: redis.port, targetHost: "localhost" });
    try {
      proxy.setRefusing(true);
      // The proxy resets the connection as soon as it accepts it: the client sees a reset
      // (sometimes before its own connect event) and never any data.
      const refused = tcpConnect({ host: "127.0.0.1", port: proxy.port });
      let refusedData = "";
      refused.on("data", (chunk: Buffer) => {
        refusedData += chunk.toString("utf8");
      });
      const outcome = await new Promise<string>((resolve) => {
        refused.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
        refused.once("close", () => resolve("closed"));
      });
      expect(["ECONNRESET", "closed"]).toContain(outcome);
      expect(refusedData).toBe("");
      expect(proxy.connections()).toBe(0);

      proxy.setRefusing(false);
      const ok = await rawClient(proxy.port);
      ok.socket.write("PING\r\n");
      await waitFor(() => ok.received() === "+PONG\r\n", { timeoutMs: 2_000, what: "PONG once accepting" });
      ok.socket.destroy();
    } finally {
      await proxy.close();
      await redis.stop();
    }
  });

  test("testkit - spawnProcess runs a child, waitForLine reads its output, kill ends it and its children", async () => {
    const child = await spawnProcess({
      name: "echoer",
      command: process.execPath,
      args: [
        "-e",
        `const { spawn } = require("node:child_process");
         const g = spawn("sleep", ["30"], { stdio: "ignore" });
         console.log("grandchild " + g.pid);
         console.error("ready " + process.env.TK_GREETING);
         setInterval(() => {}, 1000);`,
      ],
      env: { TK_GREETING: "hello" },
    });
    expect(child.isRunning()).toBe(true);
    expect(await child.waitForLine(/^ready /)).toBe("ready hello");
    const grandchildPid = Number((await child.waitForLine(/^grandchild \d+/)).split(" ")[1]);
    expect(isAlive(grandchildPid)).toBe(true);
    await expect(child.waitForLine(/never printed/, 100)).rejects.toThrow(/timed out/);

    const result = await child.kill();
    expect(result).toEqual({ code: null, signal: "SIGKILL" });
    expect(child.isRunning()).toBe(false);
    expect(isAlive(child.pid)).toBe(false);
    await waitFor(() => !isAlive(grandchildPid), { timeoutMs: 2_000, what: "grandchild to die" });

    const quitter = await spawnProcess({
      name: "quitter",
      command: process.execPath,
      args: ["-e", "process.exit(3)"],
    });
    expect(await quitter.exited).toEqual({ code: 3, signal: null });
    await expect(quitter.waitForLine(/anything/)).rejects.toThrow(/process exited/);
    await expect(spawnProcess({ name: "ghost", command: "/nonexistent/binary", args: [] })).rejects.toThrow(
      /cannot spawn/,
    );
  });

  test("testkit - bundleOf names the bundles scripts/build.mjs makes (vitest's global setup built them)", () => {
    for (const entry of [
      "services/ledger/src/rebuild.ts",
      "bench/src/runtime-stage.ts",
      "test/fixtures/echo-stage.ts",
    ])
      expect(existsSync(bundleOf(entry)), entry).toBe(true);
    expect(bundleOf("/elsewhere/services/risk/src/main.ts")).toBe("/elsewhere/services/risk/dist/main.mjs");
    expect(bundleOf("services/risk/src/main.ts", "/other")).toBe("/other/services/risk/dist/main.mjs");
  });

  test("testkit - after stopAllProcesses no process the kit started is alive", async () => {
    const nats = await startNats();
    const redis = await startRedis();
    const child = await spawnProcess({
      name: "idler",
      command: process.execPath,
      args: ["-e", "setInterval(() => {}, 1000)"],
    });
    const pids = [nats.pid, redis.pid, child.pid];
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    expect(liveProcessIds()).toEqual(expect.arrayContaining(pids));

    await stopAllProcesses();

    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(liveProcessIds()).toEqual([]);
    expect(nats.isRunning() || redis.isRunning() || child.isRunning()).toBe(false);
  });
});
