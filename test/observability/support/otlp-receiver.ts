// A tiny OTLP/HTTP trace receiver: what a collector would get from the services, kept
// in memory so that a test can read whole traces. It accepts JSON (the encoding of
// @opentelemetry/exporter-trace-otlp-http) and refuses anything else with 415, so a
// service configured for protobuf shows up as a failed export instead of a silent gap.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** OTLP span kinds (opentelemetry-proto trace.proto). */
export const OtlpSpanKind = {
  Internal: 1,
  Server: 2,
  Client: 3,
  Producer: 4,
  Consumer: 5,
} as const;

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value: AnyValue };

/** One received span, flattened with its resource's service name. */
export interface ReceivedSpan {
  readonly service: string;
  readonly serviceVersion: string | undefined;
  /** `service.instance.id`: one per process. */
  readonly serviceInstance: string | undefined;
  readonly scope: string;
  readonly name: string;
  readonly kind: number;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly attributes: Readonly<Record<string, string | number | boolean | undefined>>;
  readonly links: readonly {
    traceId: string;
    spanId: string;
    attributes: Readonly<Record<string, string | number | boolean | undefined>>;
  }[];
  readonly statusCode: number;
}

interface OtlpTraceRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: {
      scope?: { name?: string };
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind?: number;
        attributes?: KeyValue[];
        links?: { traceId: string; spanId: string; attributes?: KeyValue[] }[];
        status?: { code?: number };
      }[];
    }[];
  }[];
}

function scalar(v: AnyValue | undefined): string | number | boolean | undefined {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return undefined;
}

function attrs(list: KeyValue[] | undefined): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, scalar(kv.value)]));
}

/** A running receiver; point OTEL_EXPORTER_OTLP_ENDPOINT at {@link OtlpReceiver.url}. */
export interface OtlpReceiver {
  readonly url: string;
  /** Every span received so far, in arrival order. */
  spans(): readonly ReceivedSpan[];
  /** The spans of one trace. */
  trace(traceId: string): readonly ReceivedSpan[];
  /** Export requests refused (wrong path or encoding); a test expects none. */
  readonly refused: string[];
  close(): Promise<void>;
}

/** Starts the receiver on 127.0.0.1 on a free port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const refused: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim();
      if (req.method !== "POST" || req.url !== "/v1/traces" || type !== "application/json") {
        refused.push(`${req.method} ${req.url} ${type}`);
        res.writeHead(415, { "content-type": "application/json" }).end('{"error":"json traces only"}');
        return;
      }
      let body: OtlpTraceRequest;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpTraceRequest;
      } catch {
        refused.push("unparsable json");
        res.writeHead(400).end();
        return;
      }
      for (const rs of body.resourceSpans ?? []) {
        const resource = attrs(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            received.push({
              service: String(resource["service.name"]),
              serviceVersion: resource["service.version"] as string | undefined,
              serviceInstance: resource["service.instance.id"] as string | undefined,
              scope: ss.scope?.name ?? "",
              name: s.name,
              kind: s.kind ?? 0,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              attributes: attrs(s.attributes),
              links: (s.links ?? []).map((l) => ({
                traceId: l.traceId,
                spanId: l.spanId,
                attributes: attrs(l.attributes),
              })),
              statusCode: s.status?.code ?? 0,
            });
          }
        }
      }
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => received,
    trace: (traceId) => received.filter((s) => s.traceId === traceId),
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
