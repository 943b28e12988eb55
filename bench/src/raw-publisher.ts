// The broker's baseline for producers: JetStream async publish with a window of
// unacknowledged publishes, with or without Nats-Msg-Id. Run as a child of the bench; it
// connects, prints "ready", starts on SIGUSR2 and prints one `BENCH_RESULT {json}` line.
import { jetstream, type PubAck } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { makeEvents } from "./events.ts";
import { Latencies } from "./latency.ts";

/** What the child reports. */
export interface PublisherResult {
  readonly messages: number;
  readonly elapsedMs: number;
  readonly cpuMs: number;
  /** Its own peak RSS (the process exits right after the result: /proc may hold a zombie by then). */
  readonly peakRssBytes: number;
  readonly latency: ReturnType<Latencies["summary"]>;
}

const env = process.env;
const n = Number(env.BENCH_MESSAGES ?? 1000);
const window = Number(env.BENCH_WINDOW ?? 256);
const withMsgId = env.BENCH_MSG_ID === "1";
const events = makeEvents(n, env.BENCH_TAG ?? "pub");
const nc = await connect({ servers: env.NATS_URL ?? "", name: "bench-publisher" });
const js = jetstream(nc);

async function run(): Promise<PublisherResult> {
  const lat = new Latencies(n);
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let failed: unknown;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  for (const e of events) {
    if (inFlight >= window) await new Promise<void>((r) => (wake = r));
    if (failed) throw failed;
    inFlight++;
    const sent = performance.now();
    const p = withMsgId ? js.publish(e.subject, e.body, { msgID: e.msgID }) : js.publish(e.subject, e.body);
    all.push(
      p.then(
        (_: PubAck) => {
          lat.record(performance.now() - sent);
          inFlight--;
          wake?.();
          wake = undefined;
        },
        (err) => {
          failed = err;
          inFlight--;
          wake?.();
        },
      ),
    );
  }
  await Promise.all(all);
  if (failed) throw failed;
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    messages: n,
    elapsedMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    // maxRSS is in kilobytes.
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    latency: lat.summary(),
  };
}

process.once("SIGUSR2", () => {
  run()
    .then(async (r) => {
      console.log(`BENCH_RESULT ${JSON.stringify(r)}`);
      await nc.close();
      process.exit(0);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
});
console.log("bench publisher ready");
