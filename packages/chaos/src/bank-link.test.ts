// The bank link against a stand-in upstream on loopback: requests relayed, hang-ups passed
// on, and a held request delivered right after its retry.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BankLink, startBankLink } from "./bank-link.ts";

interface Seen {
  readonly method: string;
  readonly key: string | undefined;
  readonly at: number;
}

let upstream: Server;
let link: BankLink;
const seen: Seen[] = [];
let upstreamClosedEarly = 0;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.push({ method: req.method ?? "", key: req.headers["idempotency-key"] as string, at: Date.now() });
    req.resume();
    req.on("end", () => {
      const slow = String(req.headers["idempotency-key"]).startsWith("slow-");
      res.on("close", () => {
        if (!res.writableFinished) upstreamClosedEarly++;
      });
      setTimeout(
        () => {
          if (!res.destroyed) res.writeHead(201, { "content-type": "application/json" }).end('{"ok":true}');
        },
        slow ? 500 : 5,
      );
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  link = await startBankLink();
  link.setTarget(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await link.close();
  await new Promise((r) => upstream.close(r));
});

const post = (key: string, timeoutMs = 2000) =>
  fetch(`${link.url}/v1/payouts`, {
    method: "POST",
    headers: { "idempotency-key": key, "content-type": "application/json" },
    body: '{"transferId":"t"}',
    signal: AbortSignal.timeout(timeoutMs),
  });

describe("bank link", () => {
  it("chaos - bank link relays a call and counts it open while the bank works", async () => {
    const answer = post("slow-open");
    expect(await link.waitForCall(1000)).toBe(true);
    expect(link.callsInFlight()).toBe(1);
    const res = await answer;
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ ok: true });
    expect(link.callsInFlight()).toBe(0);
  });

  it("chaos - bank link hangs up on the bank when the client does", async () => {
    const before = upstreamClosedEarly;
    await expect(post("slow-left", 100)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 600));
    expect(upstreamClosedEarly).toBe(before + 1);
    expect(link.stats().clientLeft).toBeGreaterThan(0);
  });

  it("chaos - bank link delivers a held request right after its retry, even though its client left", async () => {
    link.holdOriginals(true, 3000);
    const from = seen.length;
    await expect(post("k-held", 200)).rejects.toThrow();
    expect(seen.slice(from)).toHaveLength(0);
    const retry = await post("k-held");
    expect(retry.status).toBe(201);
    await new Promise((r) => setTimeout(r, 200));
    link.holdOriginals(false);
    const got = seen.slice(from);
    expect(got.map((s) => s.key)).toEqual(["k-held", "k-held"]);
    // The retry reached the bank first, the original after it (the link forwards it 20 ms
    // after the retry; what the bank measures between the two arrivals varies with load, so
    // only their order is asserted, and the link's own count of overtaken originals below).
    expect((got[1] as Seen).at).toBeGreaterThan((got[0] as Seen).at);
    const s = link.stats();
    expect(s.held).toBe(1);
    expect(s.overtaken).toBe(1);
    expect(s.lateAnswers["201"]).toBe(1);
  });
});
