// The floor row's processes: the messages one transfer causes in the pipeline, done with the
// raw nats.js client and a bare node:http server, and nothing else (no decode, no Redis, no
// logs, metrics or traces). One process per mesh process, so each one's CPU compares with
// its counterpart's:
// - FLOOR_ROLE=gateway: a node:http server; each POST publishes the request body to floor.1
//   with a Nats-Msg-Id, then answers 202. It also consumes every FLOOR<n> stream and acks
//   each message (what the status projection receives), printing `floor done` once it has
//   acked FLOOR_EXPECT messages.
// - FLOOR_ROLE=stage, FLOOR_IN=<n>: a pull consumer on FLOOR<n> that publishes each message
//   to floor.<n+1> with a Nats-Msg-Id derived from the input, then acks it (publish before
//   ack, as a stage does).
import { createServer } from "node:http";
import { type JsMsg, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const env = process.env;
const nc = await connect({
  servers: env.NATS_URL ?? "",
  name: `floor-${env.FLOOR_ROLE}`,
  noAsyncTraces: true,
});
const js = jetstream(nc);
const streams = Number(env.FLOOR_STREAMS ?? 5);
const pull = Number(env.FLOOR_PULL ?? 64);

/** Acks every message of `stream` for durable `durable`, calling `each` after the ack. */
async function drain(stream: string, durable: string, handle: (m: JsMsg) => void): Promise<void> {
  const consumer = await js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: pull });
  for await (const m of messages) handle(m);
}

if (env.FLOOR_ROLE === "gateway") {
  const expect = Number(env.FLOOR_EXPECT ?? 0);
  let acked = 0;
  for (let n = 1; n <= streams; n++)
    void drain(`FLOOR${n}`, "status", (m) => {
      m.ack();
      if (++acked === expect) console.log("floor done");
    });
  let seq = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const id = req.headers["idempotency-key"] ?? `r${++seq}`;
      js.publish("floor.1", Buffer.concat(chunks), { msgID: String(id) }).then(
        (ack) => {
          res.writeHead(202, { "content-type": "application/json" });
          res.end(`{"status":"accepted","seq":${ack.seq}}`);
        },
        () => {
          res.writeHead(503);
          res.end();
        },
      );
    });
  });
  server.listen(0, "127.0.0.1", () => {
    const addr = server.address();
    console.log(`floor gateway listening ${typeof addr === "object" && addr ? addr.port : 0}`);
  });
} else {
  const from = Number(env.FLOOR_IN ?? 1);
  void drain(`FLOOR${from}`, "stage", (m) => {
    // The output id follows from the input's stream and sequence: a redelivery republishes it.
    js.publish(`floor.${from + 1}`, m.data, { msgID: `f${from}-${m.seq}` }).then(
      () => m.ack(),
      () => m.nak(),
    );
  });
  console.log(`floor stage ${from} ready`);
}
process.once("SIGTERM", () => {
  void nc.drain().then(() => process.exit(0));
});
