// The gateway when answers are lost or state is: a publish whose PubAck never came back
// (the stream stored the event all the same), a Redis that forgot a key, and keys older
// than the idempotency horizon. Real nats-server and redis-server.
import { newTimedId } from "@jetmesh/contracts";
import { PublishError } from "@jetmesh/stage";
import { createEventPublisher } from "@jetmesh/stage/internal";
import { stopAllProcesses } from "@jetmesh/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Infra,
  logger,
  postTransfer,
  provisionIngress,
  publisherSettings,
  readStream,
  serveGateway,
  startInfra,
  transfer,
} from "./test-support.ts";
import type { TransferPublisher } from "./transfers/submit.ts";

afterAll(() => stopAllProcesses());

describe("gateway at the edges", () => {
  let infra: Infra;
  beforeAll(async () => {
    infra = await startInfra();
    await provisionIngress(infra);
  });
  afterAll(() => infra?.close());

  const real = () =>
    createEventPublisher({ js: infra.js, settings: publisherSettings, logger, stage: "gateway" });
  /** Publishes for real, then loses the PubAck: the stream stored the event, the gateway cannot know. */
  function losingAcks(times: number): TransferPublisher {
    let left = times;
    const inner = real();
    return {
      async publish(env, opts) {
        const ack = await inner.publish(env, opts);
        if (left-- > 0)
          throw new PublishError("publish unacknowledged after 3 attempts", {
            refused: false,
            ambiguous: true,
          });
        return ack;
      },
    };
  }
  const stored = async (transferId: string) =>
    (await readStream(infra)).filter((m) => m.env.correlationId === transferId);

  it("gateway - after an ambiguous publish the key stays bound to its body: another body is 409, the same body gets the stored transfer", async () => {
    const gw = await serveGateway(infra, { publisher: losingAcks(1) });
    const key = newTimedId();
    try {
      const first = await postTransfer(gw.url, transfer, { key });
      expect(first.status).toBe(503);
      // The client changes the body under the same key: never accepted.
      const other = await postTransfer(gw.url, { ...transfer, amountMinor: 999_999 }, { key });
      expect(other.status).toBe(409);
      expect(await other.json()).toMatchObject({ field: "header:Idempotency-Key" });
      // The original body, retried: the stored transfer, once.
      const retry = await postTransfer(gw.url, transfer, { key });
      expect([200, 202]).toContain(retry.status);
      const { transferId } = (await retry.json()) as { transferId: string };
      const events = await stored(transferId);
      expect(events).toHaveLength(1);
      expect(events[0]!.env.data).toMatchObject({ amountMinor: transfer.amountMinor });
      const replay = await postTransfer(gw.url, transfer, { key });
      expect(replay.status).toBe(200);
      expect(((await replay.json()) as { transferId: string }).transferId).toBe(transferId);
    } finally {
      await gw.close();
    }
  });

  it("gateway - a retry whose record Redis lost is answered with the stored transfer; another body under that key is 409", async () => {
    const gw = await serveGateway(infra);
    const key = newTimedId();
    try {
      const first = await postTransfer(gw.url, transfer, { key });
      expect(first.status).toBe(202);
      const { transferId } = (await first.json()) as { transferId: string };
      await infra.redisServer.flushAll();
      const other = await postTransfer(gw.url, { ...transfer, amountMinor: 7 }, { key });
      expect(other.status).toBe(409);
      await infra.redisServer.flushAll();
      const again = await postTransfer(gw.url, transfer, { key });
      expect([200, 202]).toContain(again.status);
      expect(((await again.json()) as { transferId: string }).transferId).toBe(transferId);
      expect(await stored(transferId)).toHaveLength(1);
    } finally {
      await gw.close();
    }
  });

  it("gateway - an Idempotency-Key older than the idempotency horizon, or from the future, is refused naming the header", async () => {
    const gw = await serveGateway(infra, { settings: { idempotencyHorizonMs: 3_600_000 } });
    try {
      const old = await postTransfer(gw.url, transfer, { key: newTimedId(Date.now() - 2 * 3_600_000) });
      expect(old.status).toBe(400);
      expect(await old.json()).toMatchObject({
        issues: [
          {
            field: "header:Idempotency-Key",
            rule: expect.stringMatching(/older than the idempotency horizon/),
          },
        ],
      });
      const future = await postTransfer(gw.url, transfer, { key: newTimedId(Date.now() + 3_600_000) });
      expect(future.status).toBe(400);
      expect((await postTransfer(gw.url, transfer, { key: newTimedId() })).status).toBe(202);
    } finally {
      await gw.close();
    }
  });
});
