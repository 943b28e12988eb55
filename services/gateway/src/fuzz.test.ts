// Hostile HTTP at the gateway (issue 12): random and adversarial bodies and headers, from
// fast-check, against the real gateway, nats-server and redis-server. Every request ends in
// a 4xx that names what is wrong (or is accepted), none in a 5xx; the process keeps serving;
// every request answered 202 has its event in INGRESS.
import { newTimedId } from "@jetmesh/contracts";
import { stopAllProcesses } from "@jetmesh/testkit";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bearer,
  type Infra,
  keys,
  provisionIngress,
  type RunningGateway,
  readStream,
  serveGateway,
  startInfra,
  transfer,
} from "./test-support.ts";

afterAll(() => stopAllProcesses());

const SEED = Number(process.env.FUZZ_SEED ?? 20261129);

/** What a field of a transfer body might hold: right, wrong, and hostile. */
const hostileValue = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.constantFrom(
    "acc-1",
    "acc-2",
    "acc-100",
    "external",
    "bank:acme",
    "not-an-account!*>",
    "",
    "EUR",
    "€€€",
  ),
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1e21, Number.MAX_SAFE_INTEGER + 2, -0),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

/** JSON text a client might send: objects near the right shape, and raw hostile text. */
const hostileBody = fc.oneof(
  fc
    .record(
      {
        from: hostileValue,
        to: hostileValue,
        amountMinor: hostileValue,
        currency: hostileValue,
        extra: hostileValue,
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom(
    `{"from":"acc-1","to":"acc-2","amountMinor":1,"currency":"EUR","from":"acc-100"}`,
    `{"from":"acc-1","to":"acc-2","amountMinor":-0,"currency":"EUR"}`,
    `{"from":"acc-1","to":"acc-2","amountMinor":1.0,"currency":"EUR"}`,
    `{"from":"acc-1","to":"acc-2","amountMinor":1e2,"currency":"EUR"}`,
    `{"from":"acc-1","to":"acc-2","amountMinor":1,"currency":"EUR"`,
    `{"__proto__":{"admin":true},"from":"acc-1","to":"acc-2","amountMinor":1,"currency":"EUR"}`,
    `${"[".repeat(5000)}${"]".repeat(5000)}`,
    `{"from":"\\ud800","to":"acc-2","amountMinor":1,"currency":"EUR"}`,
    "\uFEFF{}",
  ),
);

const hostileHeaders = fc.record(
  {
    contentType: fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "application/evil+json",
      "text/plain",
      "application/json; charset=latin1",
      "",
      "application/json, text/plain",
    ),
    key: fc.oneof(
      fc.constant(undefined),
      fc.string({ maxLength: 140 }),
      fc.constant("a".repeat(129)),
      fc.constant(newTimedId()),
      fc.constant(newTimedId(Date.now() - 400 * 24 * 3600_000)),
    ),
    auth: fc.constantFrom("customer", "other", "operator", "none", "garbage", "basic"),
  },
  { requiredKeys: ["contentType", "key", "auth"] },
);

describe("gateway fuzz", () => {
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

  it("fuzz - random bodies and headers end in a 4xx naming the problem, or are accepted and stored; never a 5xx", async () => {
    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(hostileBody, hostileHeaders, async (body, h) => {
        const headers: Record<string, string> = {};
        // fetch refuses header values with control characters: those never reach a server.
        if (h.contentType) headers["content-type"] = h.contentType;
        if (h.key !== undefined && /^[\t\x20-\x7e]*$/.test(h.key)) headers["idempotency-key"] = h.key;
        if (h.auth === "customer") Object.assign(headers, bearer(keys.customer));
        if (h.auth === "other") Object.assign(headers, bearer(keys.other));
        if (h.auth === "operator") Object.assign(headers, bearer(keys.operator));
        if (h.auth === "garbage") headers.authorization = "Bearer x";
        if (h.auth === "basic") headers.authorization = "Basic Zm9vOmJhcg==";
        const res = await fetch(`${gw.url}/v1/transfers`, { method: "POST", headers, body });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status, text).toBeLessThan(500);
        const answer = JSON.parse(text) as {
          error?: string;
          field?: string;
          issues?: { field: string; rule: string }[];
          transferId?: string;
        };
        if (res.status === 202) {
          expect(answer.transferId).toMatch(/^[0-9a-f-]{36}$/);
          accepted.push(answer.transferId as string);
        } else if (res.status === 200) {
          expect(res.headers.get("idempotent-replayed")).toBe("true");
        } else {
          expect(answer.error, text).toEqual(expect.any(String));
          // A client error names the field: in the body's issues, or as `field`.
          if (res.status === 400) expect(answer.issues?.length, text).toBeGreaterThan(0);
          if ([401, 403, 415].includes(res.status)) expect(answer.field, text).toEqual(expect.any(String));
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
    // The process still serves a plain valid request.
    const ok = await fetch(`${gw.url}/v1/transfers`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": newTimedId(), ...bearer() },
      body: JSON.stringify(transfer),
    });
    expect(ok.status).toBe(202);
    // Every 202 is stored in INGRESS.
    const stored = new Set((await readStream(infra)).map((m) => m.env.correlationId));
    for (const id of accepted) expect(stored.has(id), `accepted ${id} not in INGRESS`).toBe(true);
    // The run exercised refusals of each kind, not one path only.
    for (const s of [400, 401, 415]) expect(statuses.get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
  });
});
