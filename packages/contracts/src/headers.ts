/**
 * The NATS headers every jetmesh event carries. They mirror the envelope so an
 * operator can read an event's lineage with `nats stream view` without decoding
 * the MessagePack body. This file is the one place they are named.
 */
export const Headers = {
  /** JetStream de-duplication id; equals the event id. */
  MsgId: "Nats-Msg-Id",
  /** Always `application/msgpack` for jetmesh events. */
  ContentType: "Content-Type",
  EventType: "Jetmesh-Event-Type",
  SchemaVersion: "Jetmesh-Schema-Version",
  EventId: "Jetmesh-Event-Id",
  CausationId: "Jetmesh-Causation-Id",
  CorrelationId: "Jetmesh-Correlation-Id",
  Producer: "Jetmesh-Producer",
  OccurredAt: "Jetmesh-Occurred-At",
  /**
   * The authenticated API client an event descends from (the envelope's `actor`): set by
   * the gateway from the caller's credentials, never from the body, and carried by every
   * event of the transfer.
   */
  ClientId: "Jetmesh-Client-Id",
  /** W3C trace context. */
  TraceParent: "traceparent",
  TraceState: "tracestate",
  /** Set on messages parked in the DLQ. */
  DlqReason: "Jetmesh-Dlq-Reason",
  DlqErrorClass: "Jetmesh-Dlq-Error",
  DlqStage: "Jetmesh-Dlq-Stage",
  DlqStream: "Jetmesh-Dlq-Stream",
  DlqSubject: "Jetmesh-Dlq-Subject",
  DlqSequence: "Jetmesh-Dlq-Sequence",
  DlqDeliveries: "Jetmesh-Dlq-Deliveries",
  /** Set on RECONCILE findings: the kind, `opened` or `closed`, and what it is about. */
  FindingKind: "Jetmesh-Finding-Kind",
  FindingState: "Jetmesh-Finding-State",
  FindingKey: "Jetmesh-Finding-Key",
  /**
   * Set on an operator's replay of a parked message (`jetmesh dlq replay`), published to
   * `replay.<stage>` on REPLAY: the DLQ sequence it was parked at. Its Nats-Msg-Id is derived
   * from it.
   */
  ReplayOf: "Jetmesh-Replay-Of",
  /** On a replay: the stream, subject and sequence of the original message the stage parked. */
  ReplayStream: "Jetmesh-Replay-Stream",
  ReplaySubject: "Jetmesh-Replay-Subject",
  ReplaySequence: "Jetmesh-Replay-Sequence",
} as const;
export type HeaderName = (typeof Headers)[keyof typeof Headers];

/** Content type of every jetmesh event body. */
export const CONTENT_TYPE = "application/msgpack";
