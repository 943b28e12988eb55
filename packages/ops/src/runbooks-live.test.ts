// Every runbook page of deploy/runbooks run as the on-call would run it, against a real mesh
// (every service as its own process, on a nats-server and a redis-server started here on
// loopback) put in the state the page describes: a poison message parked, a wave of them, a
// schema version no reader knows, the DLQ near full, a stage stopped (SIGSTOP) with transfers
// behind it, the bank down under a payout, a balance written into Redis behind the ledger's
// back, a consumer changed by hand; and a 3-node cluster with a node lost. Each `jetmesh` line
// runs through the CLI's bin as a child process (`sh -c`, NATS_URL / REDIS_URL /
// PAYOUT_BANK_URL set), each `curl` line through sh, placeholders filled from that state. The
// diagnosis must show the problem, the fix must remove it, the verification must show it gone.
// Not run: `nats` lines (no nats CLI on this machine; runbooks.test.ts checks them) and deploy
// actions (`docker compose …`), which the test replaces by the same act on the mesh, named in
// each page's `deploy` below. The last test checks that every line of every page was met.
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type AnyEnvelope,
  CONTENT_TYPE,
  EventTypes,
  eventHeaders,
  Headers,
  makeEnvelope,
  StreamNames,
  subjectFor,
} from "@jetmesh/contracts";
import { LedgerKeys } from "@jetmesh/ledger/store";
import { type MeshHandle, REFUSED_BANK_ACCOUNTS, startMesh, waitForQuiet } from "@jetmesh/mesh";
import { provisionStreams } from "@jetmesh/stage/internal";
import { createLogger } from "@jetmesh/stage";
import {
  type NatsClusterHandle,
  type NatsServerHandle,
  type RedisServerHandle,
  startNats,
  startNatsCluster,
  startRedis,
  stopAllProcesses,
  waitFor,
} from "@jetmesh/testkit";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listParked } from "./dlq.ts";
import { listFindings } from "./findings.ts";
import { type RunbookPage, readRunbookPages } from "./runbook-pages.ts";
import { CLI_BUNDLE, type Run, runProcess } from "./testing.ts";

/** The reconciler's open findings, read from RECONCILE as `jetmesh findings --open` reads them. */
async function openFindings(nc: NatsConnection) {
  return (await listFindings(jetstream(nc), await jetstreamManager(nc), { open: true })).findings;
}

const root = join(import.meta.dirname, "..", "..", "..");
const PAGES = new Map(readRunbookPages(root).map((p) => [p.file, p]));
/** Every line of every page, as `file: command`, struck off when run or accounted for. */
const unmet = new Set(
  [...PAGES.values()].flatMap((p) => p.blocks.flatMap((b) => b.commands.map((c) => `${p.file}: ${c}`))),
);
/** The state each page was run in, printed at the end. */
const states: string[] = [];

/**
 * `jetmesh` on the PATH, as an operator has it: the bin's code (src/cli.ts) in the bundle the
 * test run builds, run by this node (the bin itself runs it through tsx, 1 s a start).
 */
const binDir = mkdtempSync(join(tmpdir(), "jetmesh-runbooks-"));
writeFileSync(join(binDir, "jetmesh"), `#!/bin/sh\nexec "${process.execPath}" "${CLI_BUNDLE}" "$@"\n`);
chmodSync(join(binDir, "jetmesh"), 0o755);

/** One line run: the line as run, and what it printed. */
type Ran = Run & { readonly cmd: string };

/** Runs one shell line with the operator's environment; killed after 90 s (a loaded machine). */
async function sh(cmd: string, env: Record<string, string>): Promise<Ran> {
  const run = await runProcess("sh", ["-c", cmd], {
    env: {
      PATH: `${binDir}:${process.env.PATH ?? ""}`,
      HOME: process.env.HOME ?? tmpdir(),
      USER: "runbook-test",
      NATS_NKEY_SEED_FILE: "",
      ...env,
    },
    timeoutMs: 90_000,
  });
  return { ...run, cmd };
}

/** `<name>` placeholders filled; a placeholder without a value fails the test. */
function fill(cmd: string, values: Readonly<Record<string, string>>): string {
  return cmd.replace(/<([A-Za-z]+)>/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`no value for ${whole} in \`${cmd}\``);
    return v;
  });
}

/** How a page is run: its state, values, and what replaces its deploy actions. */
interface PagePlan {
  /** The state the page is run in, said plainly. */
  readonly state: string;
  /** Values of the placeholders, read again before every block (a replay moves a DLQ seq). */
  readonly values: () => Promise<Record<string, string>>;
  readonly env: Record<string, string>;
  /** What the test does in place of a `docker compose …` line; undefined: not done, said in `state`. */
  readonly deploy?: (cmd: string) => Promise<void>;
  /** `jetmesh` lines of Diagnose allowed to exit 1 (they report the problem that way). */
  readonly diagnoseMayFail?: RegExp;
  /** Called after each Fix block (a replay takes a moment to be processed and parked again). */
  readonly afterFixBlock?: (heading: string) => Promise<void>;
  /** Resolves once the fix has taken effect (a drain takes a moment), before Verify runs; bounded. */
  readonly settled?: () => Promise<void>;
}

/** What a section's lines printed, by command (filled). */
class Outputs {
  constructor(readonly runs: readonly Ran[]) {}
  /** stdout + stderr of the first line starting with `prefix`. */
  of(prefix: string): string {
    const r = this.runs.find((x) => x.cmd.startsWith(prefix));
    if (!r) throw new Error(`no line starting with ${prefix}: ${this.runs.map((x) => x.cmd).join(" | ")}`);
    return `${r.stdout}${r.stderr}`;
  }
}

/** The line with the operator's `$VARS` expanded, for the loopback check only. */
const expanded = (cmd: string, env: Readonly<Record<string, string>>) =>
  cmd.replace(/\$([A-Z_]+)/g, (_, name: string) => env[name] ?? "");

/**
 * Runs a section's lines: Diagnose and Verify only read, so their lines run side by side; Fix
 * lines run one after the other, in the page's order.
 */
async function runSection(page: RunbookPage, section: string, plan: PagePlan): Promise<Outputs> {
  const runs: Ran[] = [];
  const blocks = page.blocks.filter((b) => b.section === section);
  const one = async (line: string, values: Record<string, string>): Promise<Ran | undefined> => {
    const word = line.split(/\s+/)[0];
    unmet.delete(`${page.file}: ${line}`);
    if (word === "nats") return undefined; // parsed only: no nats CLI here (runbooks.test.ts)
    if (word === "docker") {
      await plan.deploy?.(line);
      return undefined;
    }
    expect(["jetmesh", "curl"], `${page.file}: a line the test can run: ${line}`).toContain(word);
    const cmd = fill(line, values);
    if (word === "curl")
      expect(expanded(cmd, plan.env), "curl only on loopback").toMatch(/http:\/\/127\.0\.0\.1:\d+/);
    const ran = await sh(cmd, plan.env);
    const mayFail = section === "Diagnose" && plan.diagnoseMayFail?.test(line);
    const ok = ran.code === 0 || (mayFail && ran.code === 1);
    expect(ok, `${page.file} ${section}: \`${cmd}\` exited ${ran.code}\n${ran.stdout}${ran.stderr}`).toBe(
      true,
    );
    expect(ran.stderr, `${page.file}: \`${cmd}\` printed a stack trace`).not.toMatch(/\n\s+at /);
    return ran;
  };
  if (section !== "Fix") {
    const values = await plan.values();
    const lines = blocks.flatMap((b) => b.commands);
    for (const r of await Promise.all(lines.map((l) => one(l, values)))) if (r) runs.push(r);
    return new Outputs(runs);
  }
  for (const block of blocks) {
    const values = await plan.values();
    for (const line of block.commands) {
      const r = await one(line, values);
      if (r) runs.push(r);
    }
    await plan.afterFixBlock?.(block.heading);
  }
  return new Outputs(runs);
}

/** Runs a page: Diagnose, then the checks on it, then Fix, then (once the state settled) Verify. */
async function runPage(
  file: string,
  plan: PagePlan,
  diagnosed: (out: Outputs) => void | Promise<void>,
): Promise<Outputs> {
  const page = PAGES.get(file);
  if (!page) throw new Error(`no page ${file}`);
  states.push(`${file}: ${plan.state}`);
  await diagnosed(await runSection(page, "Diagnose", plan));
  await runSection(page, "Fix", plan);
  await plan.settled?.();
  return runSection(page, "Verify", plan);
}

/** A consumer's PENDING + ACK_PENDING in `jetmesh status`'s table; undefined without its row. */
function backlogOf(status: string, stream: string, consumer: string): number | undefined {
  const m = new RegExp(`^${stream}\\s+${consumer}\\s+(\\d+)\\s+(\\d+)\\s`, "m").exec(status);
  return m ? Number(m[1]) + Number(m[2]) : undefined;
}
/** A stream's %MAX_MSGS in `jetmesh status`'s table. */
function msgsFillOf(status: string, stream: string): string | undefined {
  return new RegExp(`^${stream}\\s+\\d+\\s+\\d+\\s+\\S+\\s+(\\S+)\\s`, "m").exec(status)?.[1];
}

const logger = createLogger({ service: "runbooks-live-test", level: "silent" });
/** The codec's own MessagePack settings: a body any MessagePack tool reads. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

describe("runbooks, run on a live mesh", { timeout: 240_000 }, () => {
  let nats: NatsServerHandle;
  let redisServer: RedisServerHandle;
  let mesh: MeshHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let redis: Redis;
  let env: Record<string, string>;
  const started = Date.now();
  /** Every durable consumer drained and nothing moving (bounded). */
  const quiet = async () => {
    await waitForQuiet(jsm, { timeoutMs: 60_000 });
  };

  beforeAll(async () => {
    [nats, redisServer] = await Promise.all([startNats(), startRedis()]);
    mesh = await startMesh({
      natsUrl: nats.url,
      redisUrl: redisServer.url,
      dataDir: mkdtempSync(join(tmpdir(), "jetmesh-runbooks-mesh-")),
      removeDataOnStop: true,
      // Short protocol times, as the e2e tests use: a stopped stage's messages come back after 3 s.
      env: {
        JETMESH_ACK_WAIT_MS: "3000",
        JETMESH_MAX_DELIVER: "20",
        JETMESH_RETRY_BASE_MS: "50",
        JETMESH_RETRY_MAX_MS: "1000",
        JETMESH_DRAIN_TIMEOUT_MS: "2000",
      },
      serviceEnv: {
        // Findings within seconds: a payout waits 3 s at most, settings are checked twice a second.
        reconciler: {
          RECONCILE_DEADLINE_PAYOUT_MS: "3000",
          RECONCILE_SAMPLE_MS: "500",
          RECONCILE_SETTINGS_CHECK_MS: "500",
          RECONCILE_FULL_CHECK_MS: "1000",
        },
      },
      // The DLQ holds 12 messages here, so "nearly full" is 10 parked.
      streamLimits: { [StreamNames.Dlq]: { maxMsgs: 12 } },
      refuseAccounts: REFUSED_BANK_ACCOUNTS,
      readyTimeoutMs: 90_000,
    });
    nc = await connect({ servers: nats.url, name: "runbooks-live-test" });
    jsm = await jetstreamManager(nc);
    js = jsm.jetstream();
    redis = new Redis(redisServer.url, { lazyConnect: false, maxRetriesPerRequest: 2 });
    env = { NATS_URL: mesh.natsUrl, REDIS_URL: mesh.redisUrl, PAYOUT_BANK_URL: mesh.bankUrl };
  }, 120_000);

  afterAll(async () => {
    redis?.disconnect();
    await nc?.close().catch(() => {});
    await mesh?.stop();
    await Promise.all([nats?.stop(), redisServer?.stop()]);
    await stopAllProcesses();
  });

  /** POST /v1/transfers through the gateway, retrying 503; the transfer id. */
  async function transfer(
    key: string,
    body: { from: string; to: string; amountMinor: number },
    apiKey: string,
  ) {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const res = await fetch(`${mesh.gatewayUrl}/v1/transfers`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "idempotency-key": key,
          authorization: `Bearer ${apiKey}`,
        },
        body: JSON.stringify({ ...body, currency: "EUR" }),
      });
      const json = (await res.json().catch(() => ({}))) as { transferId?: string };
      if ((res.status === 202 || res.status === 200) && json.transferId) return json.transferId;
      if (res.status !== 503) throw new Error(`POST ${key}: ${res.status} ${JSON.stringify(json)}`);
      await sleep(200 * attempt);
    }
    throw new Error(`POST ${key}: 503 every time`);
  }

  /** A transfers.requested whose body no reader takes (`data` as given), published into INGRESS as a producer bug would. */
  async function publishUnreadable(transferId: string, data: Record<string, unknown>, version = 1) {
    const env0 = makeEnvelope(
      EventTypes.TransferRequested,
      {
        transferId,
        from: "acc-9",
        to: "acc-8",
        amountMinor: 500,
        currency: "EUR",
        requestedAt: new Date().toISOString(),
      },
      {
        eventId: `ev-${transferId}`,
        correlationId: transferId,
        causationId: `request:${transferId}`,
        producer: "gateway",
      },
    );
    const bad = { ...env0, version, data: { ...(env0.data as object), ...data } } as unknown as AnyEnvelope;
    const h = natsHeaders();
    for (const [k, v] of Object.entries(eventHeaders(env0))) if (k !== Headers.MsgId) h.set(k, v);
    h.set(Headers.SchemaVersion, String(version));
    h.set(Headers.ContentType, CONTENT_TYPE);
    await js.publish(subjectFor(EventTypes.TransferRequested, "acc-9"), packr.pack(bad), {
      msgID: bad.eventId,
      headers: h,
    });
  }

  /** The DLQ entries as `jetmesh dlq ls` reads them. */
  async function parked(): Promise<{ seq: number; stage: string | null; transferId: string | null }[]> {
    const l = await listParked(js, jsm);
    return l.entries.map((e) => ({ seq: e.dlqSeq, stage: e.stage, transferId: e.transferId }));
  }
  const parkedOf = async (ids: readonly string[]) =>
    (await parked()).filter((p) => ids.includes(p.transferId ?? ""));
  const waitParked = (ids: readonly string[], what: string) =>
    waitFor(async () => (await parkedOf(ids)).length === ids.length * COPIES, { timeoutMs: 60_000, what });

  /** Both consumers of INGRESS (validator, gateway-status) park a request neither can read. */
  const COPIES = 2;
  /** Waits until every DLQ entry of `ids` has a seq not in `before` (each replay processed and parked again). */
  const waitReparked = (ids: readonly string[], before: readonly number[]) =>
    waitFor(
      async () => {
        const now = await parkedOf(ids);
        return now.length === ids.length * COPIES && now.every((p) => !before.includes(p.seq));
      },
      { timeoutMs: 60_000, what: "every replay processed once and parked again" },
    );

  it("runbook poison-message.md - state: one transfers.requested that breaks its contract, parked by both INGRESS consumers", async () => {
    const id = "tr-poison-1";
    await publishUnreadable(id, { to: undefined });
    await waitParked([id], "the poison message parked");
    const before = (await parkedOf([id])).map((p) => p.seq);
    const values = async () => {
      const seqs = (await parkedOf([id])).map((p) => p.seq);
      return { transferId: id, dlqSeq: String(seqs[0]), dlqSeqs: seqs.join(" ") };
    };
    const verify = await runPage(
      "poison-message.md",
      {
        state:
          "a transfers.requested without `to` published into INGRESS, parked by the validator and by gateway-status; the cause cannot be fixed, so the replay block sends both back and each is processed once and parked again, then the drop block removes them",
        values,
        env,
        afterFixBlock: async (heading) => {
          if (heading.startsWith("The cause is fixed")) await waitReparked([id], before);
        },
      },
      (d) => {
        expect(d.of("jetmesh dlq ls")).toContain(id);
        expect(d.of("jetmesh dlq ls")).toMatch(/2 parked\nby stage: 1 gateway-status, 1 validator/);
        expect(d.of("jetmesh dlq show")).toMatch(
          /Jetmesh-Dlq-Reason: undecodable message: invalid transfers\.requested: \/data\/to/,
        );
        expect(d.of("jetmesh trace")).toContain(`#${before[0]}`);
      },
    );
    expect(await parkedOf([id])).toEqual([]);
    expect(verify.of("jetmesh dlq ls")).toContain("no parked messages");
    expect(verify.of("jetmesh audit --action drop")).toMatch(/drop/);
  });

  it("runbook dlq-growing.md - state: a wave of three unreadable requests parked by both INGRESS consumers", async () => {
    const ids = ["tr-wave-1", "tr-wave-2", "tr-wave-3"];
    for (const id of ids) await publishUnreadable(id, { amountMinor: "lots" });
    await waitParked(ids, "the wave parked");
    const before = (await parkedOf(ids)).map((p) => p.seq);
    const verify = await runPage(
      "dlq-growing.md",
      {
        state:
          "three transfers.requested with a string amount, six DLQ entries (validator and gateway-status); the replay block sends them back (each processed once and parked again: no reader takes them), the drop block removes them",
        values: async () => ({
          stage: "validator",
          reason: "invalid transfers.requested: /data/amountMinor",
          dlqSeq: String((await parkedOf(ids))[0]?.seq),
          transferId: ids[0] as string,
        }),
        env,
        afterFixBlock: async (heading) => {
          if (heading.startsWith("Replay")) await waitReparked(ids, before);
        },
      },
      (d) => {
        expect(d.of("jetmesh dlq ls --stage")).toMatch(
          /3 parked\nby stage: 3 validator\nby reason: 3 undecodable message/,
        );
        expect(d.of("jetmesh status")).toMatch(/^DLQ\s+6\s/m);
      },
    );
    expect(await parkedOf(ids)).toEqual([]);
    expect(verify.of("jetmesh dlq ls --reason")).toContain("no parked messages");
    expect(verify.of("jetmesh audit")).toMatch(/replay[\s\S]*drop/);
  });

  it("runbook schema-rollout.md - state: a producer writes version 99 of transfers.requested, which no reader knows", async () => {
    const ids = ["tr-v99-1", "tr-v99-2"];
    for (const id of ids) await publishUnreadable(id, { amount: 500, amountMinor: undefined }, 99);
    await waitParked(ids, "the v99 events parked");
    const before = (await parkedOf(ids)).map((p) => p.seq);
    const verify = await runPage(
      "schema-rollout.md",
      {
        state:
          "two transfers.requested of version 99 (amountMinor renamed) in INGRESS, parked by both its consumers; no reader of v99 can be deployed here, so the replay parks them again once, then the drop removes them",
        values: async () => ({
          stage: "validator",
          stream: "INGRESS",
          reason: "transfers.requested@99",
          dlqSeq: String((await parkedOf(ids))[0]?.seq),
        }),
        env,
        afterFixBlock: async (heading) => {
          if (heading.startsWith("Readers")) await waitReparked(ids, before);
        },
      },
      (d) => {
        expect(d.of("jetmesh dlq ls --stage")).toContain("2 parked");
        expect(d.of("jetmesh dlq ls --stage")).toContain("transfers.requested@99 read as v");
        expect(d.of("jetmesh dlq show")).toContain("Jetmesh-Schema-Version: 99");
        expect(d.of("jetmesh view INGRESS")).toContain("Jetmesh-Schema-Version: 99");
      },
    );
    expect(await parkedOf(ids)).toEqual([]);
    expect(verify.of("jetmesh dlq ls --reason")).toContain("no parked messages");
  });

  it("runbook stream-nearly-full.md - state: the DLQ (max 12 messages here) holds 10", async () => {
    const ids = Array.from({ length: 5 }, (_, i) => `tr-full-${i + 1}`);
    for (const id of ids) await publishUnreadable(id, { to: undefined });
    await waitParked(ids, "ten parked");
    const verify = await runPage(
      "stream-nearly-full.md",
      {
        state:
          "the DLQ created with max_msgs 12 holds 10 entries (83%); the DLQ block's dry run and drop make room; raising a limit is a nats CLI line, not run",
        values: async () => ({ stream: "DLQ", reason: "invalid transfers.requested" }),
        env,
      },
      (d) => {
        expect(msgsFillOf(d.of("jetmesh status"), "DLQ")).toBe("83.33%");
        expect(d.of("jetmesh dlq ls")).toContain("10 parked");
      },
    );
    expect(msgsFillOf(verify.of("jetmesh status"), "DLQ")).toBe("0%");
    expect(verify.of("jetmesh dlq ls")).toContain("no parked messages");
  });

  it("runbook consumer-lag.md - state: risk stopped (SIGSTOP) with transfers behind it; the fix scales it out", async () => {
    const risk = mesh.service("risk").child;
    if (!risk) throw new Error("risk is not running");
    process.kill(risk.pid, "SIGSTOP");
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++)
        ids.push(
          await transfer(
            `runbook-lag-${i}`,
            { from: "acc-11", to: "acc-12", amountMinor: 100 + i },
            mesh.apiKeys.customer,
          ),
        );
      const lagged = async () => {
        const info = await jsm.consumers.info(StreamNames.Validation, "risk");
        return info.num_pending + info.num_ack_pending >= ids.length;
      };
      await waitFor(lagged, { timeoutMs: 30_000, what: "the five transfers waiting for risk" });
      let scaled = false;
      const verify = await runPage(
        "consumer-lag.md",
        {
          state:
            "the risk process stopped with SIGSTOP, five transfers validated behind it; `docker compose up --scale` is done by starting a second risk instance on the same durable",
          values: async () => ({ stage: "risk", stream: "VALIDATION", transferId: ids[0] as string }),
          env,
          deploy: async () => {
            await mesh.addInstance("risk");
            scaled = true;
          },
          settled: quiet,
        },
        (d) => {
          expect(backlogOf(d.of("jetmesh status"), "VALIDATION", "risk")).toBeGreaterThanOrEqual(ids.length);
          expect(d.of("jetmesh trace")).toContain("transfers.validated");
          expect(d.of("jetmesh trace")).not.toContain("transfers.scored");
        },
      );
      expect(scaled).toBe(true);
      expect(backlogOf(verify.of("jetmesh status"), "VALIDATION", "risk")).toBe(0);
      expect(verify.of("jetmesh trace")).toMatch(/ledger\.(posted|declined)/);
    } finally {
      process.kill(risk.pid, "SIGCONT");
    }
  });

  it("runbook no-progress.md - state: the validator hung (SIGSTOP) with transfers waiting; the fix restarts it", async () => {
    const validator = mesh.service("validator");
    const child = validator.child;
    if (!child) throw new Error("validator is not running");
    process.kill(child.pid, "SIGSTOP");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        await transfer(
          `runbook-hung-${i}`,
          { from: "acc-13", to: "acc-14", amountMinor: 200 + i },
          mesh.apiKeys.customer,
        ),
      );
    await waitFor(
      async () => {
        const info = await jsm.consumers.info(StreamNames.Ingress, "validator");
        return info.num_pending + info.num_ack_pending >= ids.length;
      },
      { timeoutMs: 30_000, what: "the transfers waiting for the validator" },
    );
    const instance = validator.url.replace(/^http:\/\//, "");
    let restarted = false;
    const verify = await runPage(
      "no-progress.md",
      {
        state:
          "the validator process stopped with SIGSTOP (hung: /readyz does not answer), three transfers behind it; `docker compose restart` is done by killing it and starting it again",
        values: async () => ({
          stage: "validator",
          stream: "INGRESS",
          instance,
          transferId: ids[0] as string,
        }),
        env,
        deploy: async () => {
          await validator.kill();
          await validator.start();
          restarted = true;
        },
        settled: async () => {
          await validator.waitReady(30_000);
          await quiet();
        },
      },
      (d) => {
        expect(backlogOf(d.of("jetmesh status"), "INGRESS", "validator")).toBeGreaterThanOrEqual(ids.length);
        expect(d.of("curl -s -m 2 http://127.0.0.1")).toContain(`no answer from ${instance}`);
        expect(d.of("jetmesh trace")).toContain("transfers.requested");
        expect(d.of("jetmesh trace")).not.toContain("transfers.validated");
      },
    );
    expect(restarted).toBe(true);
    expect(verify.of("curl -s -m 2 http://127.0.0.1")).toMatch(/"ready":\s*true/);
    expect(verify.of("jetmesh trace")).toMatch(/ledger\.(posted|declined)/);
  });

  it("runbook stuck-payout.md - state: the bank down while a transfer to a bank account is posted", async () => {
    await transfer(
      "runbook-mint",
      { from: "external", to: "acc-21", amountMinor: 5_000 },
      mesh.apiKeys.operator,
    );
    await sleep(1500); // the mint reaches LEDGER before the payout's posting is decided
    const outage = (durationMs: number) =>
      fetch(`${mesh.bankUrl}/admin/outage`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ durationMs }),
      });
    expect((await outage(120_000)).status).toBe(200);
    const id = await transfer(
      "runbook-payout",
      { from: "acc-21", to: "bank:de001", amountMinor: 700 },
      mesh.apiKeys.customer,
    );
    await waitFor(
      async () =>
        (await openFindings(nc)).some((f) => f.kind === "stuck_transfer" && JSON.stringify(f).includes(id)),
      {
        timeoutMs: 40_000,
        what: "the reconciler's stuck_transfer finding for the payout",
      },
    );
    let bankBack = false;
    const verify = await runPage(
      "stuck-payout.md",
      {
        state:
          "the bank simulator in an outage (every /v1 call 503) while a posted transfer waits for its payout; the test ends the outage after the probe block; nothing is parked, so the parked-payout block's replays find nothing (replaying a parked payout is tested in dlq.test.ts)",
        values: async () => ({ transferId: id }),
        env,
        afterFixBlock: async (heading) => {
          if (heading.startsWith("The bank is down")) {
            expect((await outage(0)).status).toBe(200);
            bankBack = true;
          }
        },
        settled: async () => {
          await quiet();
          await waitFor(async () => !(await openFindings(nc)).some((f) => JSON.stringify(f).includes(id)), {
            timeoutMs: 30_000,
            what: "the stuck_transfer finding closed",
          });
        },
      },
      (d) => {
        expect(d.of("jetmesh findings")).toContain(id);
        expect(d.of("jetmesh trace")).toContain("ledger.posted");
        expect(d.of("jetmesh trace")).not.toContain("payouts.");
        expect(d.of("jetmesh dlq ls")).toContain("no parked messages");
        expect(d.of("curl")).toContain("bank unavailable");
      },
    );
    expect(bankBack).toBe(true);
    expect(verify.of("jetmesh trace")).toContain("payouts.completed");
    expect(verify.of("jetmesh findings")).not.toContain(id);
  });

  it("runbook redis-lost.md - state: a balance written into Redis behind the ledger's back", async () => {
    await redis.hset(LedgerKeys.balance("acc-intruder"), "EUR", "999");
    const ledger = mesh.service("ledger").url.replace(/^http:\/\//, "");
    const verify = await runPage(
      "redis-lost.md",
      {
        state:
          "ledger:balance:acc-intruder set to 999 EUR in Redis by hand (the ledger cannot see it; a lost or rolled-back Redis the ledger repairs by itself, tested in test/e2e/redis-wipe.test.ts)",
        values: async () => ({ instance: ledger }),
        env,
        diagnoseMayFail: /^jetmesh rebuild --check/,
      },
      (d) => {
        expect(d.of("jetmesh rebuild --check")).toContain("balance acc-intruder EUR: log 0, projection 999");
        expect(d.of("jetmesh rebuild --check")).toContain(
          "jetmesh: the projection differs from the fold of LEDGER",
        );
      },
    );
    expect(await redis.hget(LedgerKeys.balance("acc-intruder"), "EUR")).toBeNull();
    expect(verify.of("jetmesh audit --action rebuild-repair")).toMatch(/rebuild-repair/);
  });

  it("runbook settings-drift.md - state: the risk consumer's max_ack_pending changed by hand", async () => {
    const info = await jsm.consumers.info(StreamNames.Validation, "risk");
    const declared = info.config.max_ack_pending;
    await jsm.consumers.update(StreamNames.Validation, "risk", { max_ack_pending: 7 });
    await waitFor(async () => (await openFindings(nc)).some((f) => f.kind === "settings_drift"), {
      timeoutMs: 30_000,
      what: "the reconciler's settings_drift finding",
    });
    await runPage(
      "settings-drift.md",
      {
        state:
          "max_ack_pending of VALIDATION/risk set to 7 with the JetStream API; the fix is a nats CLI line (not run here), so the test sets it back itself after Fix",
        values: async () => ({ stage: "risk", stream: "VALIDATION" }),
        env,
        afterFixBlock: async () => {
          await jsm.consumers.update(StreamNames.Validation, "risk", { max_ack_pending: declared });
        },
        settled: async () => {
          await waitFor(async () => !(await openFindings(nc)).some((f) => f.kind === "settings_drift"), {
            timeoutMs: 30_000,
            what: "the settings_drift finding closed",
          });
        },
      },
      (d) => {
        expect(d.of("jetmesh findings")).toMatch(/settings_drift[\s\S]*risk/);
      },
    );
    expect((await openFindings(nc)).filter((f) => f.kind === "settings_drift")).toEqual([]);
  });

  it("runbook ledger-stopped.md - state: a healthy mesh (a mismatched LEDGER stops the ledger for good, so it is not built here)", async () => {
    const id = await transfer(
      "runbook-healthy",
      { from: "acc-31", to: "acc-32", amountMinor: 50 },
      mesh.apiKeys.customer,
    );
    const ledger = mesh.service("ledger").url.replace(/^http:\/\//, "");
    const verify = await runPage(
      "ledger-stopped.md",
      {
        state:
          "healthy mesh: the commands run and show a ledger that is ready and a projection equal to the fold",
        values: async () => ({ instance: ledger, transferId: id }),
        env,
      },
      (d) => {
        expect(d.of("curl")).toMatch(/"ready":\s*true/);
        expect(d.of("jetmesh rebuild --check")).toContain(" 0 difference(s)");
        expect(d.of("jetmesh findings")).toContain("no findings");
      },
    );
    expect(verify.of("jetmesh rebuild --check")).toContain(" 0 difference(s)");
  });

  it("runbook slow-or-failing.md - state: a healthy mesh (slowness over hours is not built here)", async () => {
    const id = await transfer(
      "runbook-slow",
      { from: "acc-33", to: "acc-34", amountMinor: 60 },
      mesh.apiKeys.customer,
    );
    const gateway = mesh.service("gateway").opsUrl.replace(/^http:\/\//, "");
    const verify = await runPage(
      "slow-or-failing.md",
      {
        state:
          "healthy mesh with traffic behind it: no backlog, the gateway ready and counting requests; the scale-out line is not acted on (consumer-lag.md does it)",
        values: async () => ({ instance: gateway, transferId: id, stage: "risk" }),
        env,
        settled: quiet,
      },
      (d) => {
        expect(d.of("curl -s -m 2 http://127.0.0.1:") + d.runs.map((r) => r.stdout).join("")).toContain(
          "jetmesh_http_requests_total",
        );
      },
    );
    expect(verify.of("jetmesh trace")).toMatch(/ledger\.(posted|declined)/);
  });

  it("runbook reconciler.md - state: a healthy reconciler; the fix restarts it", async () => {
    const reconciler = mesh.service("reconciler");
    const instance = reconciler.url.replace(/^http:\/\//, "");
    let restarted = false;
    const verify = await runPage(
      "reconciler.md",
      {
        state: "healthy reconciler; `docker compose restart reconciler` is done by stopping and starting it",
        values: async () => ({ instance }),
        env,
        deploy: async () => {
          await reconciler.stop();
          await reconciler.start();
          restarted = true;
        },
        settled: () => reconciler.waitReady(60_000),
      },
      (d) => {
        expect(d.of("curl")).toMatch(/"ready":\s*true/);
      },
    );
    expect(restarted).toBe(true);
    expect(verify.of("curl")).toMatch(/"ready":\s*true/);
  });

  it("runbook redis-memory.md - state: the mesh's Redis without maxmemory (JetmeshRedisNoMaxmemory); the fix sets one", async () => {
    const reconciler = mesh.service("reconciler");
    const instance = reconciler.url.replace(/^http:\/\//, "");
    const maxmemory = async () =>
      /^jetmesh_redis_maxmemory_bytes\{[^}]*\} (\S+)$/m.exec(
        await (await fetch(`${reconciler.url}/metrics`)).text(),
      )?.[1];
    expect(await redis.config("GET", "maxmemory")).toEqual(["maxmemory", "0"]);
    await waitFor(async () => (await maxmemory()) === "0", {
      timeoutMs: 30_000,
      what: "the reconciler's jetmesh_redis_maxmemory_bytes reading 0",
    });
    const limit = 8 * 1024 ** 3;
    let raised = false;
    const verify = await runPage(
      "redis-memory.md",
      {
        state:
          "Redis as the harness starts it, with no maxmemory; `docker compose up -d redis-primary redis-replica` is done by CONFIG SET maxmemory 8gb on the running server (what the edited files would give it)",
        values: async () => ({ instance }),
        env,
        deploy: async () => {
          await redis.config("SET", "maxmemory", String(limit));
          raised = true;
        },
        settled: async () => {
          await waitFor(async () => (await maxmemory()) === String(limit), {
            timeoutMs: 30_000,
            what: "the reconciler reading the new maxmemory",
          });
        },
      },
      (d) => {
        expect(d.of("curl")).toMatch(/^jetmesh_redis_maxmemory_bytes\{[^}]*\} 0$/m);
        expect(d.of("curl")).toMatch(/^jetmesh_redis_up\{[^}]*\} 1$/m);
      },
    );
    expect(raised).toBe(true);
    expect(verify.of("curl")).toMatch(new RegExp(`^jetmesh_redis_maxmemory_bytes\\{[^}]*\\} ${limit}$`, "m"));
  });

  describe("on a 3-node cluster", () => {
    let cluster: NatsClusterHandle;
    afterAll(async () => {
      await cluster?.stop();
    });

    it("runbook nats-node-lost.md - state: a 3-node cluster with R3 streams, one node stopped (no services)", async () => {
      cluster = await startNatsCluster({ size: 3 });
      await cluster.waitForJetStream();
      const cnc = await connect({ servers: cluster.urls, name: "runbooks-cluster" });
      try {
        const cjsm = await jetstreamManager(cnc);
        await provisionStreams(cjsm, { replicas: 3, logger });
        const posted = makeEnvelope(
          EventTypes.LedgerPosted,
          {
            transferId: "tr-cluster-1",
            from: "external",
            to: "acc-1",
            amountMinor: 100,
            currency: "EUR",
            decision: "allow",
          },
          {
            eventId: "ev-cluster-1",
            correlationId: "tr-cluster-1",
            causationId: "scored:tr-cluster-1",
            producer: "ledger",
          },
        );
        const h = natsHeaders();
        for (const [k, v] of Object.entries(eventHeaders(posted))) if (k !== Headers.MsgId) h.set(k, v);
        await cjsm.jetstream().publish(subjectFor(EventTypes.LedgerPosted, "external"), packr.pack(posted), {
          msgID: posted.eventId,
          headers: h,
        });
      } finally {
        await cnc.close();
      }
      const lost = cluster.nodes[0];
      if (!lost) throw new Error("no node");
      await lost.kill("SIGTERM");
      await cluster.waitForJetStream();
      // The streams whose leader was on n1 elect another: an operator arrives after that.
      const rest = await connect({ servers: cluster.urls.slice(1), name: "runbooks-cluster-rest" });
      try {
        const rjsm = await jetstreamManager(rest);
        await waitFor(
          async () => {
            for (const name of [StreamNames.Ledger, StreamNames.Dlq]) {
              const leader = (await rjsm.streams.info(name)).cluster?.leader;
              if (!leader || leader === lost.serverName) return false;
            }
            return true;
          },
          { timeoutMs: 30_000, what: "LEDGER and DLQ led by a node that is up" },
        );
      } finally {
        await rest.close();
      }
      let back = false;
      const verify = await runPage(
        "nats-node-lost.md",
        {
          state:
            "3-node nats-server cluster, every stream R3, one ledger.posted on LEDGER, node n1 stopped; NATS_URL lists all three (n1 first); `docker compose up -d <node>` is done by starting n1 again",
          values: async () => ({ node: "n1" }),
          env: { NATS_URL: cluster.url },
          deploy: async () => {
            await lost.restart();
            await cluster.waitForJetStream();
            back = true;
          },
        },
        (d) => {
          expect(d.of("jetmesh status")).toMatch(/^LEDGER\s+1\s/m);
          expect(d.of("jetmesh view LEDGER")).toContain("tr-cluster-1");
        },
      );
      expect(back).toBe(true);
      expect(verify.of("jetmesh view LEDGER")).toContain("tr-cluster-1");
    });
  });

  it("runbooks - every line of every page was run, or accounted for (nats: parsed only; docker: done by the test)", () => {
    expect([...unmet]).toEqual([]);
    expect(states).toHaveLength(PAGES.size);
    console.log(`runbooks run in ${Math.round((Date.now() - started) / 1000)} s:\n${states.join("\n")}`);
  });
});
