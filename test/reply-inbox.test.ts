// ReplyInbox (PubAcks and confirmed acks through one subscription) against a real nats-server.
import { ReplyInbox } from "@jetmesh/stage/internal";
import { type NatsServerHandle, startNats, stopAllProcesses } from "@jetmesh/testkit";
import {
  connect,
  type Msg,
  type NatsConnection,
  NoRespondersError,
  TimeoutError,
} from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const text = (m: Msg) => new TextDecoder().decode(m.data);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("reply inbox", () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let responder: NatsConnection;

  beforeAll(async () => {
    server = await startNats({ jetstream: false });
    nc = await connect({ servers: server.url });
    responder = await connect({ servers: server.url });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await responder?.close();
    await stopAllProcesses();
  });

  it("reply inbox - each request gets its own reply, whatever order the replies come in", async () => {
    // Holds every request until all 50 arrived, then answers them last first.
    const held: Msg[] = [];
    const sub = responder.subscribe("inbox.test.echo", {
      callback: (_e, m) => {
        held.push(m);
        if (held.length === 50) for (const h of held.reverse()) h.respond(bytes(`re:${text(h)}`));
      },
    });
    await responder.flush();
    const inbox = new ReplyInbox(nc, 2000);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => inbox.request("inbox.test.echo", bytes(`q${i}`), undefined, 2000)),
    );
    expect(replies.map(text)).toEqual(Array.from({ length: 50 }, (_, i) => `re:q${i}`));
    expect(inbox.waiting).toBe(0);
    sub.unsubscribe();
  });

  it("reply inbox - a request nobody answers fails with TimeoutError after its timeout, and is forgotten", async () => {
    const sub = responder.subscribe("inbox.test.silent", { callback: () => {} });
    await responder.flush();
    const inbox = new ReplyInbox(nc, 200);
    const started = performance.now();
    const err = await inbox.request("inbox.test.silent", bytes("x"), undefined, 200).catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(took).toBeGreaterThanOrEqual(190);
    expect(inbox.waiting).toBe(0);
    sub.unsubscribe();
  });

  it("reply inbox - a request to a subject without subscribers fails with NoRespondersError", async () => {
    const inbox = new ReplyInbox(nc, 2000);
    const err = await inbox
      .request("inbox.test.nobody", bytes("x"), undefined, 2000)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRespondersError);
    expect(inbox.waiting).toBe(0);
  });

  it("reply inbox - requests on a closed connection are rejected, not left waiting", async () => {
    const closing = await connect({ servers: server.url });
    const inbox = new ReplyInbox(closing, 2000);
    await closing.close();
    const err = await inbox.request("inbox.test.echo", bytes("x"), undefined, 2000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(inbox.waiting).toBe(0);
  });
});
