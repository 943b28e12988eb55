// Input events of every row: transfers.requested, encoded with the contracts codec and
// carrying the headers the gateway sets, so every row moves the same bytes.
import { encodeEvent, EventTypes, eventHeaders, makeEnvelope, subjectFor } from "@jetmesh/contracts";
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";

/** One input event, encoded as the gateway publishes it. */
export interface WireEvent {
  readonly subject: string;
  readonly body: Uint8Array;
  readonly headers: MsgHdrs;
  readonly msgID: string;
}

/** `n` distinct transfers.requested events (ids unique per `tag`). */
export function makeEvents(n: number, tag: string, from = 0): WireEvent[] {
  const out: WireEvent[] = new Array(n);
  const requestedAt = new Date().toISOString();
  for (let k = 0; k < n; k++) {
    const i = from + k;
    const transferId = `${tag}-${i}`;
    const env = makeEnvelope(
      EventTypes.TransferRequested,
      {
        transferId,
        from: `acc-${i % 97}`,
        to: `acc-${(i % 97) + 1}`,
        amountMinor: 100 + (i % 1000),
        currency: "EUR",
        requestedAt,
      },
      {
        eventId: `${tag}-req-${i}`,
        correlationId: transferId,
        causationId: `bench:${transferId}`,
        producer: "bench",
      },
    );
    const h = natsHeaders();
    for (const [k2, v] of Object.entries(eventHeaders(env))) h.set(k2, v);
    out[k] = {
      subject: subjectFor(env.type, env.data.from),
      body: encodeEvent(env),
      headers: h,
      msgID: env.eventId,
    };
  }
  return out;
}
