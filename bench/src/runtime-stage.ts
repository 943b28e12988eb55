// The same work as handwritten-stage.ts through @jetmesh/stage: a trivial handler
// (transfers.requested → transfers.validated), wired as a service's main.ts wires it:
// pino root at info, OpenTelemetry started, the process's Prometheus registry, JETMESH_*
// settings from the environment (JETMESH_MODE, JETMESH_ACK_MODE, JETMESH_MAX_IN_FLIGHT).
// Run as a child of the bench, bundled as a service is: `node dist/runtime-stage.mjs`.
import { EventTypes } from "@jetmesh/contracts";
import {
  connectNats,
  createLogger,
  createRedis,
  defineStage,
  emit,
  loadStageConfig,
  onShutdown,
  runStage,
  startTelemetry,
} from "@jetmesh/stage";
import { getHeapSpaceStatistics } from "node:v8";
import type { ExportResult } from "@opentelemetry/core";
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";

/** The bench stage: everything but the protocol is trivial. */
export const benchStage = defineStage<"transfers.requested">({
  name: process.env.BENCH_STAGE ?? "runtime",
  inputs: [{ stream: "INGRESS", types: [EventTypes.TransferRequested] }],
  emits: [EventTypes.TransferValidated],
  handle: (evt) => {
    const { transferId, from, to, amountMinor, currency } = evt.data;
    return [emit(EventTypes.TransferValidated, { transferId, from, to, amountMinor, currency })];
  },
});

/** Exports spans to nowhere: the cost of a deployed exporter minus the network. */
class DiscardingExporter implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.exported += spans.length;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

// Main when run as the bundle (or as the source, through tsx), not when imported.
if (/runtime-stage\.(ts|mjs)$/.test(process.argv[1] ?? "")) {
  const config = loadStageConfig(process.env);
  const logger = createLogger({ service: benchStage.name, level: config.logLevel });
  // BENCH_TRACING: unset = as deployed without an OTLP endpoint; "batch" = with an exporter
  // (that drops the spans); "off" = no SDK at all (what tracing costs).
  const tracing = process.env.BENCH_TRACING;
  const telemetry = startTelemetry({
    serviceName: benchStage.name,
    ...(tracing === "batch" ? { spanProcessors: [new BatchSpanProcessor(new DiscardingExporter())] } : {}),
    ...(tracing === "off" ? { disabled: true } : {}),
  });
  const nc = await connectNats({ url: config.natsUrl, name: benchStage.name });
  const redis = createRedis({ url: config.redisUrl, name: benchStage.name });
  const stage = await runStage({
    definition: benchStage,
    deps: {},
    nc,
    redis,
    logger,
    settings: config.stage,
  });
  console.log("bench stage ready");
  // Diagnostics: BENCH_MEMLOG=ms prints RSS and V8 heap spaces every ms to stderr.
  if (process.env.BENCH_MEMLOG) {
    setInterval(() => {
      const spaces = Object.fromEntries(
        getHeapSpaceStatistics().map((sp) => [sp.space_name, Math.round(sp.space_size / 1048576)]),
      );
      const m = process.memoryUsage();
      console.error(
        `memlog rss=${Math.round(m.rss / 1048576)} ext=${Math.round(m.external / 1048576)} ${JSON.stringify(spaces)}`,
      );
    }, Number(process.env.BENCH_MEMLOG)).unref();
  }
  onShutdown(logger, [() => stage.stop(), () => nc.drain(), () => redis.quit(), () => telemetry.shutdown()]);
}
