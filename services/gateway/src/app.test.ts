import { setTimeout as sleep } from "node:timers/promises";
import {
  EventTypes,
  Headers,
  LedgerProjection,
  makeEnvelope,
  outputEventId,
  StreamNames,
  Streams,
} from "@jetmesh/contracts";
import { extractContext, runStage, type StageHandle, stageSettings } from "@jetmesh/stage";
import { createEventPublisher, provisionStreams } from "@jetmesh/stage/internal";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { AckPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusProjection } from "./status/projection.ts";
import { createStatusStore } from "./status/status-store.ts";
import {
  type Infra,
  logger,
  postChunked,
  postTransfer,
  provisionIngress,
  publisherSettings,
  type RunningGateway,
  readStream,
  getAs,
  keys,
  recordOf,
  serveGateway,
  startInfra,
  testIdsFor,
  transfer,
} from "./test-support.ts";
import { startLagMonitor } from "./transfers/load-shedding.ts";
import { requestHash } from "./transfers/request.ts";
import type { TransferPublisher } from "./transfers/submit.ts";

afterAll(async () => {
  await stopAllProcesses();
});

describe("gateway API", () => {
  let infra: Infra;
  let gw: RunningGateway;
  beforeAll(async () => {
    infra = await startInfra();
    await provisionIngress(infra);
    gw = await serveGateway(infra);
  });
  afterAll(async () => {
    await gw?.close();
    await infra?.close();
  });

  it("gateway - 202 once JetStream stored transfers.requested with derived ids, headers and trace context", async () => {
    const res = await postTransfer(gw.url, transfer, { key: "k-accept" });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { transferId: string; eventId: string; traceId: string };
    expect(body).toEqual({ ...testIdsFor("k-accept"), traceId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const stored = (await readStream(infra)).filter((m) => m.env.eventId === body.eventId);
    expect(stored).toHaveLength(1);
    const [m] = stored;
    expect(m?.subject).toMatch(/^transfers\.requested\.\d\d$/);
    expect(m?.env).toMatchObject({
      type: EventTypes.TransferRequested,
      correlationId: body.transferId,
      causationId: "idempotency-key:k-accept",
      producer: "gateway",
      data: { ...transfer, transferId: body.transferId },
    });
    expect(m?.headers[Headers.MsgId]).toBe(body.eventId);
    expect(m?.headers[Headers.CorrelationId]).toBe(body.transferId);
    expect(m?.headers[Headers.TraceParent]).toMatch(new RegExp(`^00-${body.traceId}-[0-9a-f]{16}-0[01]$`));
  });

  it("gateway - a replay with the same key and body answers 200 with the same ids and publishes nothing", async () => {
    const first = await postTransfer(gw.url, transfer, { key: "k-replay" });
    expect(first.status).toBe(202);
    const answer = await first.json();
    // same request, keys in another order and other whitespace: still the same request
    const again = await postTransfer(
      gw.url,
      `{ "currency":"EUR", "amountMinor":1250, "to":"acc-2", "from":"acc-1" }`,
      {
        key: "k-replay",
      },
    );
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.json()).toEqual(answer);
    const copies = (await readStream(infra)).filter((m) => m.env.eventId === testIdsFor("k-replay").eventId);
    expect(copies).toHaveLength(1);
  });

  it("gateway - a retry after a lost answer republishes the same Nats-Msg-Id and the stream drops it", async () => {
    const first = await postTransfer(gw.url, transfer, { key: "k-lost" });
    expect(first.status).toBe(202);
    const before = (await infra.jsm.streams.info(StreamNames.Ingress)).state.messages;
    // the gateway died after publishing and before recording the answer (or Redis lost it):
    // the retry is answered from the event the stream holds, as a replay
    await infra.redis.del(recordOf("k-lost"));
    const retry = await postTransfer(gw.url, transfer, { key: "k-lost" });
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(((await retry.json()) as { transferId: string }).transferId).toBe(testIdsFor("k-lost").transferId);
    expect((await infra.jsm.streams.info(StreamNames.Ingress)).state.messages).toBe(before);
  });

  it("gateway - the same key with a different body is 409 naming the conflict", async () => {
    expect((await postTransfer(gw.url, transfer, { key: "k-conflict" })).status).toBe(202);
    const res = await postTransfer(gw.url, { ...transfer, amountMinor: 9999 }, { key: "k-conflict" });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({
      error: "idempotency key conflict",
      field: "header:Idempotency-Key",
    });
  });

  it("gateway - a retry while the first request is in flight is 409 in progress with Retry-After", async () => {
    // another gateway instance holds the lease and has not finished
    const hash = requestHash(transfer);
    await infra.redis.hset(recordOf("k-busy"), {
      bodyHash: hash,
      status: "pending",
      owner: "elsewhere",
      leaseUntil: String(Date.now() + 3000),
      firstAt: new Date().toISOString(),
    });
    await infra.redis.pexpire(recordOf("k-busy"), 3000);
    const res = await postTransfer(gw.url, transfer, { key: "k-busy" });
    expect(res.status).toBe(409);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({ error: "request in progress" });
  });

  it("gateway - a retry waits briefly for the first request and gets its answer", async () => {
    const hash = requestHash(transfer);
    const key = recordOf("k-wait");
    await infra.redis.hset(key, {
      bodyHash: hash,
      status: "pending",
      owner: "elsewhere",
      leaseUntil: String(Date.now() + 3000),
      firstAt: new Date().toISOString(),
    });
    await infra.redis.pexpire(key, 3000);
    const answer = { ...testIdsFor("k-wait"), traceId: "b".repeat(32) };
    const pending = postTransfer(gw.url, transfer, { key: "k-wait" });
    await sleep(100);
    await infra.redis.hset(key, { status: "done", answer: JSON.stringify(answer) });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(answer);
  });

  it("gateway - 400 names every wrong field with its rule", async () => {
    const res = await postTransfer(
      gw.url,
      { from: "", to: 42, amountMinor: 12.5, currency: "EURO" },
      { key: "k-bad" },
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: "invalid request",
      issues: [
        { field: "/from", rule: "must not be empty" },
        { field: "/to", rule: "must be string" },
        { field: "/amountMinor", rule: "must be integer" },
        { field: "/currency", rule: "must be 3 letters" },
      ],
    });
  });

  it("gateway - a reference and metadata are accepted and published as transfers.requested v2", async () => {
    const body = { ...transfer, reference: "invoice 42", metadata: { order: "o-9", channel: "web" } };
    const res = await postTransfer(gw.url, body, { key: "k-v2" });
    expect(res.status).toBe(202);
    const { eventId, transferId } = (await res.json()) as { eventId: string; transferId: string };
    const [m] = (await readStream(infra)).filter((x) => x.env.eventId === eventId);
    expect(m?.headers[Headers.SchemaVersion]).toBe("2");
    expect(m?.env.data).toEqual({ ...body, transferId, requestedAt: expect.any(String) });
    // a plain request is v2 too, without the optional fields
    const plain = await postTransfer(gw.url, transfer, { key: "k-v2-plain" });
    const plainId = ((await plain.json()) as { eventId: string }).eventId;
    const [p] = (await readStream(infra)).filter((x) => x.env.eventId === plainId);
    expect(p?.headers[Headers.SchemaVersion]).toBe("2");
    expect(Object.keys(p?.env.data ?? {}).sort()).toEqual(
      ["amountMinor", "currency", "from", "requestedAt", "to", "transferId"].sort(),
    );
    // the same key with another reference is another request
    const other = await postTransfer(gw.url, { ...body, reference: "invoice 43" }, { key: "k-v2" });
    expect(other.status).toBe(409);
  });

  it("gateway - 400 names an oversized reference or metadata, and unknown fields are still refused", async () => {
    const before = (await infra.jsm.streams.info(StreamNames.Ingress)).state.messages;
    const res = await postTransfer(
      gw.url,
      { ...transfer, reference: "r".repeat(141), metadata: { note: "v".repeat(257) }, memo: "x" },
      { key: "k-v2-bad" },
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: "invalid request",
      issues: [
        { field: "/reference", rule: "must be at most 140 characters" },
        { field: "/metadata/note", rule: "must be at most 256 characters" },
        { field: "/memo", rule: "is not allowed" },
      ],
    });
    expect((await infra.jsm.streams.info(StreamNames.Ingress)).state.messages).toBe(before);
  });

  it("gateway - 400 names a missing or malformed Idempotency-Key", async () => {
    const missing = await postTransfer(gw.url, transfer);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({
      error: "invalid request",
      issues: [{ field: "header:Idempotency-Key", rule: "is required" }],
    });
    const malformed = await postTransfer(
      gw.url,
      { ...transfer, amountMinor: "x" },
      { key: "no spaces allowed" },
    );
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { issues: { field: string }[] }).issues.map((i) => i.field)).toEqual([
      "header:Idempotency-Key",
      "/amountMinor",
    ]);
  });

  it("gateway - 413 for a body over the limit, declared or streamed, and nothing is published", async () => {
    const before = (await infra.jsm.streams.info(StreamNames.Ingress)).state.messages;
    const big = { ...transfer, padding: "x".repeat(20 * 1024) };
    const res = await postTransfer(gw.url, big, { key: "k-big" });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: "payload too large" });
    const streamed = await postChunked(gw.url, "x".repeat(1024), 64, "k-big-chunked");
    expect(streamed.status).toBe(413);
    expect(streamed.connection).toBe("close");
    expect((await infra.jsm.streams.info(StreamNames.Ingress)).state.messages).toBe(before);
  });

  it("gateway - 415 for any content type but application/json, 400 naming the field for broken JSON", async () => {
    for (const contentType of ["text/plain", "application/evil+json", "application/json; charset=latin1"]) {
      const res = await postTransfer(gw.url, JSON.stringify(transfer), { key: "k-415", contentType });
      expect(res.status, contentType).toBe(415);
      expect(await res.json()).toEqual({
        error: "unsupported media type",
        detail: "content-type must be application/json (optionally ; charset=utf-8)",
        field: "header:Content-Type",
      });
    }
    const broken = await postTransfer(gw.url, `{"from":"acc-1",`, { key: "k-415" });
    expect(broken.status).toBe(400);
    expect(await broken.json()).toMatchObject({
      error: "invalid request",
      issues: [{ field: "/", rule: expect.stringMatching(/^is not valid JSON/) }],
    });
    const charset = await postTransfer(gw.url, transfer, {
      key: "k-415-charset",
      contentType: "application/json; charset=utf-8",
    });
    expect(charset.status).toBe(202);
  });

  it("gateway - 404 for unknown paths, 405 with Allow for wrong methods", async () => {
    const unknown = await getAs(`${gw.url}/v1/nope`);
    expect(unknown.status).toBe(404);
    const wrong = await getAs(`${gw.url}/v1/transfers`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
  });

  it("gateway - GET account answers the ledger's balances, 404 without a balance hash", async () => {
    expect((await getAs(`${gw.url}/v1/accounts/acc-49`)).status).toBe(404);
    await infra.redis.hset(LedgerProjection.balanceKey("acc-7"), { EUR: "1250", USD: "-3" });
    const res = await getAs(`${gw.url}/v1/accounts/acc-7`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "acc-7", balances: { EUR: 1250, USD: -3 } });
  });

  it("gateway - GET status of an unknown transfer is 404", async () => {
    const res = await getAs(`${gw.url}/v1/transfers/${testIdsFor("never-sent").transferId}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "transfer not found" });
  });

  it("gateway - health, readiness and metrics on the ops port, with route templates as labels", async () => {
    expect((await fetch(`${gw.opsUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gw.opsUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { nats: { ok: true }, redis: { ok: true } } });
    await getAs(`${gw.url}/v1/transfers/some-id`);
    // Not on the API port, with or without a key.
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      expect((await fetch(`${gw.url}${path}`)).status).toBe(404);
      expect((await getAs(`${gw.url}${path}`)).status).toBe(404);
    }
    const metrics = await (await fetch(`${gw.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /jetmesh_http_requests_total\{route="\/v1\/transfers",method="POST",status="202"\} \d+/,
    );
    expect(metrics).toMatch(
      /jetmesh_http_requests_total\{route="\/v1\/transfers\/:id",method="GET",status="404"\} \d+/,
    );
    expect(metrics).toMatch(/jetmesh_http_requests_total\{route="unmatched",method="GET",status="404"\}/);
    expect(metrics).toMatch(
      /jetmesh_http_request_duration_seconds_bucket\{le="[0-9.]+",route="\/v1\/transfers",method="POST"\}/,
    );
    expect(metrics).not.toContain("some-id");
  });
});

describe("gateway status projection", () => {
  let infra: Infra;
  let gw: RunningGateway;
  let stage: StageHandle | undefined;
  beforeAll(async () => {
    infra = await startInfra();
    await provisionIngress(infra);
    // The deploy step: the projection reads every pipeline stream, LEDGER included.
    await provisionStreams(infra.jsm, { replicas: 1, logger });
    stage = await runStage({
      definition: statusProjection,
      deps: { store: createStatusStore(infra.redis, { ttlMs: 3600_000 }) },
      nc: infra.nc,
      redis: infra.redis,
      logger,
      settings: stageSettings({ ackWaitMs: 2000, maxDeliver: 5, retryBaseMs: 50 }),
    });
    gw = await serveGateway(infra, stage ? { probes: [stage] } : {});
  });
  afterAll(async () => {
    await stage?.stop();
    await gw?.close();
    await infra?.close();
  });

  it("gateway - GET status shows the lineage once the projection consumed the events", async () => {
    const res = await postTransfer(gw.url, transfer, { key: "k-status" });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { transferId: string; eventId: string; traceId: string };
    // the validator's answer, as it would publish it: caused by the request, same trace
    const requested = (await readStream(infra)).find((m) => m.env.eventId === accepted.eventId);
    const validatedId = outputEventId("validator", accepted.eventId, "transfers.validated");
    const validated = makeEnvelope(
      EventTypes.TransferValidated,
      { ...transfer, transferId: accepted.transferId },
      {
        eventId: validatedId,
        correlationId: accepted.transferId,
        causationId: accepted.eventId,
        producer: "validator",
      },
    );
    const publisher = createEventPublisher({
      js: infra.js,
      settings: publisherSettings,
      logger,
      stage: "validator",
    });
    const parent = extractContext({ get: (k) => requested?.headers[k], set: () => {} });
    await publisher.publish(validated, { parent });

    const view = await waitFor(
      async () => {
        const r = await getAs(`${gw.url}/v1/transfers/${accepted.transferId}`);
        const v =
          r.status === 200
            ? ((await r.json()) as { status: string; lineage: Record<string, unknown>[] })
            : undefined;
        return v?.status === "validated" ? v : undefined;
      },
      { what: "status validated", timeoutMs: 15_000 },
    );
    expect(view.lineage).toHaveLength(2);
    expect(view.lineage[0]).toMatchObject({
      type: EventTypes.TransferRequested,
      eventId: accepted.eventId,
      stream: StreamNames.Ingress,
      sequence: requested?.seq,
      traceId: accepted.traceId,
      sincePreviousMs: null,
    });
    expect(view.lineage[1]).toMatchObject({
      type: EventTypes.TransferValidated,
      eventId: validatedId,
      causationId: accepted.eventId,
      stream: StreamNames.Validation,
      traceId: accepted.traceId,
      sincePreviousMs: expect.any(Number),
    });
  });

  it("gateway - the projection records events that never passed through this gateway", async () => {
    const transferId = "t-from-elsewhere";
    const env = makeEnvelope(
      EventTypes.TransferRequested,
      { ...transfer, transferId, requestedAt: new Date().toISOString() },
      { eventId: "e-from-elsewhere", correlationId: transferId, causationId: "test", producer: "test" },
    );
    const publisher = createEventPublisher({
      js: infra.js,
      settings: publisherSettings,
      logger,
      stage: "test",
    });
    const ack = await publisher.publish(env);
    const view = await waitFor(
      async () => {
        // No actor on it: only an operator sees it.
        const r = await getAs(`${gw.url}/v1/transfers/${transferId}`, keys.operator);
        return r.status === 200
          ? ((await r.json()) as { status: string; lineage: { sequence: number }[] })
          : undefined;
      },
      { what: "status of a transfer published directly", timeoutMs: 15_000 },
    );
    expect(view.status).toBe("requested");
    expect(view.lineage[0]?.sequence).toBe(ack.seq);
    expect((await getAs(`${gw.url}/v1/transfers/${transferId}`)).status).toBe(404);
    const ready = await fetch(`${gw.opsUrl}/readyz`);
    expect(await ready.json()).toMatchObject({ ready: true, checks: { "gateway-status": { ok: true } } });
  });
});

describe("gateway load shedding and outages", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
    await provisionIngress(infra);
  });
  afterAll(async () => {
    await infra?.close();
  });

  it("gateway - 503 with Retry-After when the validator's INGRESS lag is over the limit; replays still answer", async () => {
    await infra.jsm.consumers.add(StreamNames.Ingress, {
      durable_name: "validator",
      ack_policy: AckPolicy.Explicit,
    });
    const lag = startLagMonitor({
      jsm: infra.jsm,
      stream: StreamNames.Ingress,
      consumer: "validator",
      intervalMs: 100,
      logger,
    });
    const gw = await serveGateway(infra, { lag: lag.current, settings: { maxLag: 2 } });
    try {
      for (const key of ["k-lag-1", "k-lag-2", "k-lag-3"]) {
        expect((await postTransfer(gw.url, transfer, { key })).status).toBe(202);
      }
      await waitFor(() => (lag.current() ?? 0) > 2, { what: "lag above 2" });
      const shed = await postTransfer(gw.url, transfer, { key: "k-lag-4" });
      expect(shed.status).toBe(503);
      expect(shed.headers.get("retry-after")).toBe("1");
      expect(await shed.json()).toEqual({ error: "overloaded", detail: "downstream lag too high" });
      // the shed request left no claim behind, and a finished one still replays
      expect(await infra.redis.exists(recordOf("k-lag-4"))).toBe(0);
      expect((await postTransfer(gw.url, transfer, { key: "k-lag-1" })).status).toBe(200);
    } finally {
      lag.stop();
      await gw.close();
      await infra.jsm.consumers.delete(StreamNames.Ingress, "validator");
    }
  });

  it("gateway - 503 with Retry-After when too many publishes are in flight", async () => {
    let releasePublish: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      releasePublish = resolve;
    });
    const slow: TransferPublisher = {
      publish: async () => {
        await gate;
        return { stream: StreamNames.Ingress, seq: 1 };
      },
    };
    const gw = await serveGateway(infra, {
      publisher: slow,
      settings: { maxPending: 1, inProgressWaitMs: 50 },
    });
    try {
      const first = postTransfer(gw.url, transfer, { key: "k-slow-1" });
      await waitFor(async () => (await infra.redis.exists(recordOf("k-slow-1"))) === 1, {
        what: "first claim",
      });
      const second = await postTransfer(gw.url, transfer, { key: "k-slow-2" });
      expect(second.status).toBe(503);
      expect(second.headers.get("retry-after")).toBe("1");
      expect(await second.json()).toEqual({ error: "overloaded", detail: "too many publishes in flight" });
      const sameKey = await postTransfer(gw.url, transfer, { key: "k-slow-1" });
      expect(sameKey.status).toBe(409);
      releasePublish();
      expect((await first).status).toBe(202);
    } finally {
      releasePublish();
      await gw.close();
    }
  });

  it("gateway - 503 with Retry-After while Redis is down; nothing is published", async () => {
    const gw = await serveGateway(infra);
    const before = (await infra.jsm.streams.info(StreamNames.Ingress)).state.messages;
    await infra.redisServer.kill();
    try {
      const res = await postTransfer(gw.url, transfer, { key: "k-redis-down" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("2");
      // The first Redis call of a request is its client's rate bucket.
      expect(await res.json()).toEqual({ error: "rate limiter unavailable" });
      expect((await getAs(`${gw.url}/v1/accounts/acc-1`)).status).toBe(503);
      expect((await fetch(`${gw.opsUrl}/readyz`)).status).toBe(503);
      expect((await infra.jsm.streams.info(StreamNames.Ingress)).state.messages).toBe(before);
    } finally {
      await infra.redisServer.restart();
      await gw.close();
    }
    await waitFor(() => infra.redis.status === "ready", { what: "redis reconnected" });
  });
});

describe("gateway when JetStream refuses", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
  });
  afterAll(async () => {
    await infra?.close();
  });

  it("gateway - 503 when INGRESS is full (discard new), and the key can be retried", async () => {
    const cfg = { ...Streams.INGRESS, name: StreamNames.Ingress };
    await infra.jsm.streams.add({
      name: cfg.name,
      subjects: [...cfg.subjects],
      max_msgs: 1,
      discard: "new" as never,
      storage: "file" as never,
      duplicate_window: 60_000_000_000,
    });
    const gw = await serveGateway(infra);
    try {
      expect((await postTransfer(gw.url, transfer, { key: "k-full-1" })).status).toBe(202);
      const res = await postTransfer(gw.url, transfer, { key: "k-full-2" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("2");
      expect(await res.json()).toMatchObject({ error: "event stream unavailable" });
      expect(await infra.redis.exists(recordOf("k-full-2"))).toBe(0);
      // room again: the same key goes through
      await infra.jsm.streams.purge(StreamNames.Ingress);
      expect((await postTransfer(gw.url, transfer, { key: "k-full-2" })).status).toBe(202);
    } finally {
      await gw.close();
      await infra.jsm.streams.delete(StreamNames.Ingress);
    }
  });

  it("gateway - 503 when no stream takes the subject (no responders)", async () => {
    const gw = await serveGateway(infra);
    try {
      const res = await postTransfer(gw.url, transfer, { key: "k-no-stream" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("2");
      expect(await res.json()).toMatchObject({ error: "event stream unavailable" });
    } finally {
      await gw.close();
    }
  });

  it("gateway - 503 with Retry-After when nats-server is stopped; the retry after it is back is accepted", async () => {
    await provisionIngress(infra);
    const gw = await serveGateway(infra);
    // a gateway that has not noticed the outage yet: the publish itself must time out
    const unaware = await serveGateway(infra, { natsConnected: () => true });
    try {
      await infra.nats.kill();
      const res = await waitFor(
        async () => {
          const r = await postTransfer(gw.url, transfer, { key: "k-nats-down" });
          return r.status === 503 ? r : undefined;
        },
        { what: "503 while nats is down" },
      );
      expect(res.headers.get("retry-after")).toBe("2");
      expect(await res.json()).toEqual({ error: "event stream unavailable", detail: "nats disconnected" });
      const timedOut = await postTransfer(unaware.url, transfer, { key: "k-nats-down-2" });
      expect(timedOut.status).toBe(503);
      expect(timedOut.headers.get("retry-after")).toBe("2");
      expect((await fetch(`${gw.opsUrl}/readyz`)).status).toBe(503);
    } finally {
      await infra.nats.restart();
    }
    const accepted = await waitFor(
      async () => {
        const r = await postTransfer(gw.url, transfer, { key: "k-nats-down" });
        return r.status === 202 ? r : undefined;
      },
      { what: "202 after nats is back", timeoutMs: 20_000 },
    );
    expect(((await accepted.json()) as { transferId: string }).transferId).toBe(
      testIdsFor("k-nats-down").transferId,
    );
    await gw.close();
    await unaware.close();
  });
});
