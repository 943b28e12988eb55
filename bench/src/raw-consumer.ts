// The broker's baseline for consumers: a pull consumer that acks every message (plain
// acks, nothing else). Run as a child of the bench, which created the durable consumer
// and watches its progress from outside.
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const env = process.env;
const nc = await connect({ servers: env.NATS_URL ?? "", name: "bench-consumer" });
const js = jetstream(nc);
const consumer = await js.consumers.get("INGRESS", env.BENCH_STAGE ?? "raw");
const messages = await consumer.consume({ max_messages: Number(env.BENCH_PULL ?? 256) });
console.log("bench consumer ready");
process.once("SIGTERM", () => {
  messages.stop();
  void nc.drain().then(() => process.exit(0));
});
for await (const m of messages) m.ack();
