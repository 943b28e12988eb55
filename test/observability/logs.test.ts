// Logs as an operator reads them: JSON lines from a real stage, every line about a message
// naming the stage, the event, the transfer and the trace, levels that mean something,
// and no account id in clear.
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { EventTypes, makeEnvelope, Streams } from "@jetmesh/contracts";
import {
  createLogger,
  createRedis,
  defineStage,
  emit,
  maskAccount,
  PermanentError,
  runStage,
  type StageHandle,
  stageSettings,
  startTelemetry,
  TransientError,
} from "@jetmesh/stage";
import { startNats, startRedis, stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Infra, readStream, startInfra } from "../support/infra.ts";
import { publishTraced, serviceEnv, startService } from "./support/pipeline.ts";

startTelemetry({ serviceName: "logs-test" });

const TAG = Math.random().toString(36).slice(2, 8);
const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal"]);
/** Fields on every line about one message (STYLE.md, Logs and traces). */
const MESSAGE_FIELDS = ["stage", "event_id", "transfer_id", "trace_id", "span_id", "subject", "stream_seq"];

type Line = Record<string, unknown> & { level: string; msg: string };

function parseLines(text: string): Line[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      let line: Line;
      try {
        line = JSON.parse(l) as Line;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
      expect(LEVELS.has(line.level), `level of ${l}`).toBe(true);
      expect(typeof line.time).toBe("string");
      expect(typeof line.msg).toBe("string");
      return line;
    });
}

function transfer(i: number, data: { from: string; to: string; amountMinor: number; currency?: string }) {
  const transferId = `${TAG}-t${i}`;
  return makeEnvelope(
    EventTypes.TransferRequested,
    { transferId, currency: "EUR", requestedAt: new Date().toISOString(), ...data },
    { eventId: `${TAG}-e${i}`, correlationId: transferId, causationId: `test:${i}`, producer: "test" },
  );
}

const TRACE_PREFIX = randomBytes(12).toString("hex");
/** A sampled caller's traceparent; its trace id is what every line about message `i` must carry. */
const traceparent = (i: number) => `00-${TRACE_PREFIX}${i.toString(16).padStart(8, "0")}-00f067aa0ba902b7-01`;
const traceIdOf = (tp: string) => tp.split("-")[1];

describe("logs of the stage runtime (in process)", () => {
  let infra: Infra;
  let stage: StageHandle | undefined;
  let out = "";
  const sink = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  const failures = new Map<string, number>();
  // A stage that does what handlers do by mistake: log the whole event, and throw errors
  // whose messages name an account.
  const probe = defineStage<"transfers.requested", Record<string, never>>({
    name: `logprobe-${TAG}`,
    inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
    emits: [EventTypes.TransferValidated],
    handle: (evt, ctx) => {
      ctx.logger.info({ event: evt }, `handling a transfer from ${evt.data.from}`);
      const d = evt.data;
      if (d.amountMinor === 66) throw new PermanentError(`account ${d.to} is closed`);
      if (d.amountMinor === 13 && (failures.get(evt.eventId) ?? 0) < 1) {
        failures.set(evt.eventId, 1);
        throw new TransientError(`insufficient funds on ${d.from} for now`);
      }
      const { transferId, from, to, amountMinor, currency } = d;
      return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
    },
  });

  beforeAll(async () => {
    infra = await startInfra();
  }, 120_000);
  afterAll(async () => {
    await stage?.stop();
    await infra?.close();
  });

  it("logs - a real stage's lines name stage, event, transfer and trace, mean something by level, and mask accounts anywhere", async () => {
    const redis = createRedis({ url: infra.redisServer.url, name: "logs-test" });
    stage = await runStage({
      definition: probe,
      deps: {},
      nc: infra.nc,
      redis,
      logger: createLogger({ service: "logs-test", level: "debug", destination: sink }),
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });
    const accounts = { ok: `acc-${TAG}okfrom`, flaky: `acc-${TAG}flaky`, closed: `bank:${TAG}-closed` };
    const inputs = [
      transfer(1, { from: accounts.ok, to: `acc-${TAG}okto`, amountMinor: 100 }),
      transfer(2, { from: accounts.flaky, to: `acc-${TAG}okto`, amountMinor: 13 }),
      transfer(3, { from: accounts.ok, to: accounts.closed, amountMinor: 66 }),
    ];
    for (const [i, env] of inputs.entries()) await publishTraced(infra.js, env, traceparent(i + 1));
    await waitFor(
      async () =>
        (await readStream(infra.jsm, Streams.VALIDATION.name)).length >= 2 && out.includes("parked"),
      { what: "two outputs and one parked message", timeoutMs: 30_000 },
    );
    await waitFor(() => out.split("\n").filter((l) => l.includes('"msg":"processed"')).length >= 2, {
      what: "both processed lines",
    });
    await stage.stop();
    stage = undefined;
    redis.disconnect();

    const lines = parseLines(out);
    const about = lines.filter((l) => "event_id" in l);
    expect(about.length).toBeGreaterThanOrEqual(6);
    for (const l of about) {
      for (const f of MESSAGE_FIELDS) expect(l, `${f} on ${JSON.stringify(l)}`).toHaveProperty(f);
      const i = inputs.findIndex((e) => e.eventId === l.event_id);
      expect(i, `a known event on ${JSON.stringify(l)}`).toBeGreaterThanOrEqual(0);
      expect(l.transfer_id).toBe(inputs[i]!.correlationId);
      // The CONSUMER span of the message: the caller's trace, a span of its own.
      expect(l.trace_id).toBe(traceIdOf(traceparent(i + 1)));
      expect(l.span_id).toMatch(/^[0-9a-f]{16}$/);
      expect(l.span_id).not.toBe("00f067aa0ba902b7");
      expect(l.stage).toBe(`logprobe-${TAG}`);
    }
    // Levels: debug per message, warn for a transient failure, error for a parked message.
    const byMsg = (m: string) => about.filter((l) => l.msg === m);
    expect(byMsg("processed").map((l) => [l.level, l.event_id])).toEqual(
      expect.arrayContaining([
        ["debug", inputs[0]!.eventId],
        ["debug", inputs[1]!.eventId],
      ]),
    );
    expect(byMsg("transient failure, retrying").map((l) => [l.level, l.event_id])).toEqual([
      ["warn", inputs[1]!.eventId],
    ]);
    expect(byMsg("message parked in the DLQ").map((l) => [l.level, l.event_id])).toEqual([
      ["error", inputs[2]!.eventId],
    ]);
    expect(lines.filter((l) => l.level === "error").every((l) => l.event_id === inputs[2]!.eventId)).toBe(
      true,
    );
    expect(lines.find((l) => l.msg === "stage started")?.level).toBe("info");

    // No account in clear, whether a field (at any depth), the message, or an error's text.
    for (const a of Object.values(accounts)) expect(out).not.toContain(a);
    const handling = about.find((l) => l.event_id === inputs[0]!.eventId && l.level === "info")!;
    expect(handling.msg).toBe(`handling a transfer from ${maskAccount(accounts.ok)}`);
    const logged = (handling.event as { data: { from: string; to: string } }).data;
    expect(logged.from).toBe(maskAccount(accounts.ok));
    expect(logged.from.endsWith(accounts.ok.slice(-4))).toBe(true);
    const retried = byMsg("transient failure, retrying")[0] as Line & {
      err: { message: string; stack: string };
    };
    expect(retried.err.message).toBe(`insufficient funds on ${maskAccount(accounts.flaky)} for now`);
    const parked = byMsg("message parked in the DLQ")[0] as Line & { err: { stack: string }; reason: string };
    expect(parked.reason).toBe(`account ${maskAccount(accounts.closed)} is closed`);
    expect(parked.err.stack).toContain(maskAccount(accounts.closed) as string);
  });
});

describe("logs of a service process", () => {
  afterAll(() => stopAllProcesses());

  it("logs - the validator writes JSON lines: info lifecycle, debug per message, error when it parks, accounts masked", async () => {
    const [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const nc = await connect({ servers: nats.url });
    try {
      const validator = await startService(
        "validator",
        serviceEnv({ natsUrl: nats.url, redisUrl: redis.url }, { LOG_LEVEL: "debug" }),
      );
      const js = jetstream(nc);
      const from = `acc-${TAG}valfrom`;
      const inputs = [
        transfer(11, { from, to: `acc-${TAG}valto`, amountMinor: 100 }),
        // Breaks a business rule: rejected, which is a normal outcome (debug), not an error.
        transfer(12, { from, to: `bank:${TAG}-valbank`, amountMinor: 100, currency: "XXX" }),
      ];
      for (const [i, env] of inputs.entries()) await publishTraced(js, env, traceparent(11 + i));
      // Not MessagePack at all: a poison message, parked with the reason.
      await js.publish("transfers.requested.00", new TextEncoder().encode("not msgpack"));
      await validator.child.waitForLine(/message parked in the DLQ/, 30_000);
      await waitFor(
        () => validator.child.lines().filter((l) => l.includes('"msg":"processed"')).length >= 2 || undefined,
        { what: "both transfers processed", timeoutMs: 30_000 },
      );
      const exit = await validator.child.stop(15_000);
      expect(exit).toEqual({ code: 0, signal: null });

      const text = validator.child.lines().join("\n");
      const lines = parseLines(text);
      expect(lines.every((l) => l.service === "validator")).toBe(true);
      for (const m of [
        "stage started",
        "http listening",
        "shutting down",
        "draining",
        "drained",
        "stopped",
      ]) {
        expect(lines.find((l) => l.msg === m)?.level, m).toBe("info");
      }
      for (const [i, env] of inputs.entries()) {
        const mine = lines.filter((l) => l.event_id === env.eventId);
        expect(mine.length).toBeGreaterThan(0);
        for (const l of mine) {
          for (const f of MESSAGE_FIELDS) expect(l, `${f} on ${JSON.stringify(l)}`).toHaveProperty(f);
          expect(l).toMatchObject({ stage: "validator", transfer_id: env.correlationId });
          expect(l.trace_id).toBe(traceIdOf(traceparent(11 + i)));
          expect(l.level).toBe("debug");
        }
        expect(mine.some((l) => l.msg === "processed")).toBe(true);
      }
      expect(
        lines.find((l) => l.event_id === inputs[1]!.eventId && l.msg === "transfer rejected"),
      ).toBeDefined();
      // The poison message could not be decoded, so it has no event id; the trace and the
      // stream position still say which message it was.
      const parked = lines.filter((l) => l.msg === "message parked in the DLQ");
      expect(parked).toHaveLength(1);
      expect(parked[0]).toMatchObject({
        level: "error",
        stage: "validator",
        subject: "transfers.requested.00",
      });
      expect(parked[0]!.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(lines.filter((l) => l.level === "error")).toHaveLength(1);
      expect(text).not.toContain(from);
      expect(text).not.toContain(`bank:${TAG}-valbank`);
    } finally {
      await nc.close();
      await Promise.all([nats.stop(), redis.stop()]);
    }
  }, 180_000);
});
