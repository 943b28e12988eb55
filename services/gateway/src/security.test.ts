// The gateway as an attacker on the same network meets it (issue 12): every request here
// worked before the gateway authenticated clients. Real nats-server, redis-server and HTTP.
import { connect as connectTcp, type Socket } from "node:net";
import { Writable } from "node:stream";
import { deriveId, Headers, LedgerProjection, newApiKey, newTimedId, parseClients } from "@jetmesh/contracts";
import { createLogger } from "@jetmesh/stage";
import { stopAllProcesses, waitFor } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyAuthenticator } from "./auth/clients.ts";
import {
  bearer,
  getAs,
  type Infra,
  keys,
  postTransfer,
  provisionIngress,
  type RunningGateway,
  readStream,
  serveGateway,
  startInfra,
  testClients,
  testIdsFor,
  transfer,
} from "./test-support.ts";
import { idsFor } from "./transfers/submit.ts";
import { parseIdSecrets } from "./transfers/transfer-ids.ts";

afterAll(() => stopAllProcesses());

const mint = (amountMinor: number, to = "acc-3") => ({ from: "external", to, amountMinor, currency: "EUR" });

describe("gateway security", () => {
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
  const ingressCount = async () => (await infra.jsm.streams.info("INGRESS")).state.messages;

  it("gateway security - no key, a malformed, unknown or expired key: 401 with WWW-Authenticate, nothing published", async () => {
    const expiring = newApiKey();
    const clients = parseClients({
      clients: [
        ...testClients,
        {
          id: "retired",
          role: "customer",
          accounts: ["acc-200"],
          keys: [{ id: "old", sha256: expiring.sha256, notAfter: "2020-01-01T00:00:00Z" }],
        },
      ],
    });
    const g = await serveGateway(infra, { authenticator: createApiKeyAuthenticator(clients) });
    const before = await ingressCount();
    try {
      const cases: [string, Record<string, string>][] = [
        ["missing", {}],
        ["malformed", { authorization: "Basic dXNlcjpwYXNz" }],
        ["unknown", bearer(newApiKey())],
        ["expired", bearer(expiring)],
      ];
      for (const [what, headers] of cases) {
        const res = await postTransfer(g.url, transfer, { key: newTimedId(), apiKey: null, headers });
        expect(res.status, what).toBe(401);
        expect(res.headers.get("www-authenticate"), what).toMatch(/^Bearer realm="jetmesh"/);
        expect(await res.json(), what).toMatchObject({
          error: "unauthorized",
          field: "header:Authorization",
        });
        expect((await fetch(`${g.url}/v1/accounts/acc-1`, { headers })).status, what).toBe(401);
      }
      expect(await ingressCount()).toBe(before);
    } finally {
      await g.close();
    }
  });

  it("gateway security - minting: a customer may not send from external; an operator may, within its mint limit", async () => {
    const before = await ingressCount();
    const byCustomer = await postTransfer(gw.url, mint(10_000_000), { key: newTimedId() });
    expect(byCustomer.status).toBe(403);
    expect(await byCustomer.json()).toMatchObject({ error: "forbidden", field: "/from" });
    // Twenty keys are twenty refusals, not 200,000,000 minted.
    for (let i = 0; i < 20; i++)
      expect((await postTransfer(gw.url, mint(10_000_000), { key: newTimedId() })).status).toBe(403);
    const overLimit = await postTransfer(gw.url, mint(1_000_000_001), {
      key: newTimedId(),
      apiKey: keys.operator,
    });
    expect(overLimit.status).toBe(403);
    expect(await overLimit.json()).toMatchObject({ field: "/amountMinor" });
    expect(await ingressCount()).toBe(before);
    const ok = await postTransfer(gw.url, mint(10_000_000), { key: newTimedId(), apiKey: keys.operator });
    expect(ok.status).toBe(202);
    expect(await ingressCount()).toBe(before + 1);
  });

  it("gateway security - debiting an account the client does not own is 403 naming /from", async () => {
    const before = await ingressCount();
    const res = await postTransfer(gw.url, { ...transfer, from: "acc-100" }, { key: newTimedId() });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: "forbidden", field: "/from" });
    // The owner may.
    const owner = await postTransfer(
      gw.url,
      { ...transfer, from: "acc-100" },
      { key: newTimedId(), apiKey: keys.other },
    );
    expect(owner.status).toBe(202);
    expect(await ingressCount()).toBe(before + 1);
  });

  it("gateway security - balances only for their owner; external only for operators", async () => {
    await infra.redis.hset(LedgerProjection.balanceKey("acc-100"), { EUR: "500" });
    await infra.redis.hset(LedgerProjection.balanceKey(LedgerProjection.externalAccount), { EUR: "-500" });
    expect((await getAs(`${gw.url}/v1/accounts/acc-100`)).status).toBe(403);
    expect((await getAs(`${gw.url}/v1/accounts/external`)).status).toBe(403);
    expect((await getAs(`${gw.url}/v1/accounts/acc-100`, keys.other)).status).toBe(200);
    expect((await getAs(`${gw.url}/v1/accounts/external`, keys.operator)).status).toBe(200);
  });

  it("gateway security - the client travels with the event (envelope actor and Jetmesh-Client-Id), never from the body", async () => {
    const forged = await postTransfer(gw.url, { ...transfer, actor: "test-operator" }, { key: newTimedId() });
    expect(forged.status).toBe(400);
    expect(await forged.json()).toMatchObject({ issues: [{ field: "/actor", rule: "is not allowed" }] });
    const res = await postTransfer(gw.url, transfer, { key: newTimedId() });
    const { eventId } = (await res.json()) as { eventId: string };
    const [m] = (await readStream(infra)).filter((x) => x.env.eventId === eventId);
    expect(m?.env.actor).toBe("test-customer");
    expect(m?.headers[Headers.ClientId]).toBe("test-customer");
  });

  it("gateway security - idempotency keys are per client: nobody can pre-claim or replay another client's key", async () => {
    const key = newTimedId();
    // The attacker guesses (or saw) the victim's key and sends it first, with a body of its own.
    const attacker = await postTransfer(
      gw.url,
      { ...transfer, from: "acc-100" },
      { key, apiKey: keys.other },
    );
    expect(attacker.status).toBe(202);
    const victim = await postTransfer(gw.url, transfer, { key });
    expect(victim.status).toBe(202);
    const v = (await victim.json()) as { transferId: string };
    const a = (await attacker.json()) as { transferId: string };
    expect(v.transferId).not.toBe(a.transferId);
    // Replaying the victim's key and body learns nothing of the victim's transfer.
    const replay = await postTransfer(gw.url, { ...transfer, from: "acc-100" }, { key, apiKey: keys.other });
    expect(replay.status).toBe(200);
    expect(((await replay.json()) as { transferId: string }).transferId).toBe(a.transferId);
    // And another client cannot read the victim's transfer.
    await waitFor(async () => (await getAs(`${gw.url}/v1/transfers/${v.transferId}`)).status === 200, {
      what: "victim's transfer visible to the victim",
    });
    expect((await getAs(`${gw.url}/v1/transfers/${v.transferId}`, keys.other)).status).toBe(404);
    expect((await getAs(`${gw.url}/v1/transfers/${v.transferId}`, keys.operator)).status).toBe(200);
  });

  it("gateway security - transfer ids are keyed: not the key's hash, different under another secret, stable across a rotation for keys in flight", async () => {
    const key = "predictable-key-1";
    // Before: deriveId("gateway", "transfer", key), which anyone can compute.
    expect(testIdsFor(key).transferId).not.toBe(deriveId("gateway", "transfer", key));
    const secret = (byte: number) => Buffer.alloc(32, byte).toString("base64");
    const v1 = parseIdSecrets({
      versions: [{ version: 1, notBefore: "2026-01-01T00:00:00Z", secret: secret(1) }],
    });
    const other = parseIdSecrets({
      versions: [{ version: 1, notBefore: "2026-01-01T00:00:00Z", secret: secret(2) }],
    });
    const rotated = parseIdSecrets({
      versions: [
        { version: 1, notBefore: "2026-01-01T00:00:00Z", secret: secret(1) },
        { version: 2, notBefore: "2026-12-01T00:00:00Z", secret: secret(3) },
      ],
    });
    const inFlight = newTimedId(Date.parse("2026-11-30T23:59:00Z"));
    const after = newTimedId(Date.parse("2026-12-01T00:01:00Z"));
    // A timed key is dated by its own time, whatever its record says (firstAt).
    const firstAt = "2026-12-05T00:00:00Z";
    const id = (ids: typeof v1, client: string, k: string) => idsFor(ids, client, k, firstAt).transferId;
    expect(id(v1, "c", inFlight)).not.toBe(id(other, "c", inFlight));
    // Version 2 is added while inFlight is being retried: its transfer keeps its id.
    expect(id(rotated, "c", inFlight)).toBe(id(v1, "c", inFlight));
    expect(rotated.versionAt(Date.parse("2026-12-01T00:01:00Z"))).toBe(2);
    expect(id(rotated, "c", after)).not.toBe(id(v1, "c", after));
    // The client is part of it: the same key of two clients names two transfers.
    expect(id(v1, "c", inFlight)).not.toBe(id(v1, "d", inFlight));
    // An untimed key (development only) is dated by its record's first claim.
    expect(idsFor(rotated, "c", key, "2026-11-30T00:00:00Z").transferId).toBe(
      idsFor(v1, "c", key, "2026-11-30T00:00:00Z").transferId,
    );
    expect(() =>
      parseIdSecrets({ versions: [{ version: 1, notBefore: "2026-01-01T00:00:00Z", secret: "c2hvcnQ=" }] }),
    ).toThrow(/secret/);
  });

  it("gateway security - strict JSON: duplicate keys, -0, 1.0 and 1e3 are refused naming the field", async () => {
    const before = await ingressCount();
    const dup = await postTransfer(
      gw.url,
      `{"from":"acc-1","to":"acc-2","amountMinor":1,"currency":"EUR","from":"acc-100"}`,
      { key: newTimedId() },
    );
    expect(dup.status).toBe(400);
    expect(await dup.json()).toMatchObject({
      issues: [{ field: "/from", rule: "appears more than once in its object" }],
    });
    for (const amount of ["-0", "1.0", "1e3", "10E0", "2.50e2"]) {
      const res = await postTransfer(
        gw.url,
        `{"from":"acc-1","to":"acc-2","amountMinor":${amount},"currency":"EUR"}`,
        { key: newTimedId() },
      );
      expect(res.status, amount).toBe(400);
      expect(await res.json(), amount).toMatchObject({ issues: [{ field: "/amountMinor" }] });
    }
    const proto = await postTransfer(
      gw.url,
      `{"__proto__":{"from":"acc-100"},"to":"acc-2","amountMinor":1,"currency":"EUR"}`,
      {
        key: newTimedId(),
      },
    );
    expect(proto.status).toBe(400);
    expect(await ingressCount()).toBe(before);
  });

  it("gateway security - per-client token buckets shared by every gateway instance: 429 with Retry-After and RateLimit headers", async () => {
    const limited = newApiKey();
    const clients = parseClients({
      clients: [
        ...testClients,
        {
          id: "limited",
          role: "customer",
          accounts: ["acc-300"],
          rate: { perSecond: 0.2, burst: 4 },
          keys: [{ id: "k", sha256: limited.sha256 }],
        },
      ],
    });
    const a = await serveGateway(infra, { authenticator: createApiKeyAuthenticator(clients) });
    const b = await serveGateway(infra, { authenticator: createApiKeyAuthenticator(clients) });
    try {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 6; i++) {
        last = await getAs(`${(i % 2 ? b : a).url}/v1/accounts/acc-300`, limited);
        statuses.push(last.status);
        if (i === 0) {
          expect(last.headers.get("ratelimit-limit")).toBe("4");
          expect(last.headers.get("ratelimit-remaining")).toBe("3");
        }
      }
      // Four through (404: no balance yet), across both instances; then refused.
      expect(statuses).toEqual([404, 404, 404, 404, 429, 429]);
      expect(Number(last?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(last?.headers.get("ratelimit-remaining")).toBe("0");
      expect(last?.headers.get("ratelimit-policy")).toBe("4;w=20");
      expect(await last?.json()).toMatchObject({ error: "too many requests" });
      // Another client's bucket is its own.
      expect((await getAs(`${a.url}/v1/accounts/acc-1`)).status).not.toBe(429);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("gateway connection limits", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
    await provisionIngress(infra);
  });
  afterAll(() => infra?.close());

  const open = (url: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const s = connectTcp(Number(u.port), u.hostname, () => resolve(s));
      s.on("error", reject);
    });
  /** Resolves with what the server sent once it closes the socket, or undefined after `ms`. */
  const closedWithin = (s: Socket, ms: number): Promise<string | undefined> =>
    new Promise((resolve) => {
      let got = "";
      s.on("data", (d) => {
        got += d.toString();
      });
      const timer = setTimeout(() => resolve(undefined), ms);
      s.on("close", () => {
        clearTimeout(timer);
        resolve(got);
      });
      s.on("error", () => {});
    });

  it("gateway security - a client trickling headers or a body is cut off at the deadline, not held open", async () => {
    const gw = await serveGateway(infra, { settings: { headersTimeoutMs: 600, requestTimeoutMs: 1200 } });
    const timers: NodeJS.Timeout[] = [];
    try {
      const headers = await open(gw.url);
      headers.write("POST /v1/transfers HTTP/1.1\r\nHost: gw\r\n");
      timers.push(setInterval(() => headers.write("X-Slow: 1\r\n"), 150));
      const body = await open(gw.url);
      body.write(
        `POST /v1/transfers HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${keys.customer.key}\r\nContent-Type: application/json\r\nIdempotency-Key: ${newTimedId()}\r\nContent-Length: 400\r\n\r\n{`,
      );
      timers.push(setInterval(() => body.write(" "), 150));
      // Deadlines of 0.6 s and 1.2 s, checked every second: closed well before 8 s.
      const [h, b] = await Promise.all([closedWithin(headers, 8000), closedWithin(body, 8000)]);
      expect(h, "header trickler still connected").toBeDefined();
      expect(h).toMatch(/^HTTP\/1\.1 408/);
      expect(b, "body trickler still connected").toBeDefined();
    } finally {
      for (const t of timers) clearInterval(t);
      await gw.close();
    }
  });

  it("gateway security - connections beyond the limit are refused while the others are served", async () => {
    const gw = await serveGateway(infra, { settings: { maxConnections: 3 } });
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await open(gw.url));
      const extra = await open(gw.url);
      expect(await closedWithin(extra, 3000)).toBe("");
      for (const s of held) expect(s.destroyed).toBe(false);
    } finally {
      for (const s of held) s.destroy();
      await gw.close();
    }
  });

  it("gateway security - a client that aborts its body is logged and counted as a client abort (499), not a 500", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      service: "gateway-test",
      level: "debug",
      destination: new Writable({
        write(chunk, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    });
    const gw = await serveGateway(infra, { logger });
    try {
      const s = await open(gw.url);
      s.write(
        `POST /v1/transfers HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${keys.customer.key}\r\nContent-Type: application/json\r\nIdempotency-Key: ${newTimedId()}\r\nContent-Length: 400\r\n\r\n{"from":`,
      );
      await new Promise((r) => setTimeout(r, 200));
      s.destroy();
      const metrics = await waitFor(
        async () => {
          const text = await (await fetch(`${gw.opsUrl}/metrics`)).text();
          return /route="\/v1\/transfers",method="POST",status="499"\} 1/.test(text) ? text : undefined;
        },
        { what: "a 499 counted" },
      );
      expect(metrics).not.toMatch(/status="500"/);
      const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; err?: unknown });
      expect(logged.some((l) => l.msg === "client aborted the request" && l.level === "info")).toBe(true);
      expect(logged.some((l) => l.level === "error" || l.err !== undefined)).toBe(false);
    } finally {
      await gw.close();
    }
  });
});
