/**
 * @jetmesh/ops: the operators' CLI `jetmesh` and the readers behind it. Everything reads the
 * streams with plain JetStream clients and decodes with the contracts codec. Only the DLQ
 * actions write: a replay on `replay.<stage>` (REPLAY), a DLQ entry removed, an event on AUDIT.
 */
export { actorOf, recordAudit, requireAudit } from "./audit.ts";
export type { AnyAuditEvent, AuditedEntry, AuditEvent, RepairAuditEvent, RewindAuditEvent } from "./audit.ts";
export { askBank, payoutBankKey } from "./bank-status.ts";
export type { BankKeyStatus } from "./bank-status.ts";
export { openSession, defaultServer } from "./connect.ts";
export type { Session } from "./connect.ts";
export { decodeBody, renderDecoded, toJson } from "./decode.ts";
export type { DecodedBody } from "./decode.ts";
export { entryOf, getParked, listParked, matches, readParked, renderListing } from "./dlq.ts";
export type { DlqEntry, DlqFilter, DlqListing } from "./dlq.ts";
export {
  checkSelection,
  dropParked,
  GoodOutcomes,
  PAYOUT_STAGE,
  renderResults,
  replayMsgId,
  replayParked,
  selectParked,
} from "./dlq-actions.ts";
export type { ActionResult, Parked, Selection } from "./dlq-actions.ts";
export { ExitCodes, OpsError } from "./errors.ts";
export { listFindings, renderFindings } from "./findings.ts";
export type { FindingRow, FindingsFilter, FindingsListing } from "./findings.ts";
export type { ExitCode } from "./errors.ts";
export { parseCli, runCli } from "./program.ts";
export type { CliIo, ParseCheck } from "./program.ts";
export { headerOf, readStream, streamInfo } from "./read-stream.ts";
export type { ReadRange, StoredMessage } from "./read-stream.ts";
export { checkProjection, openRedis, renderCheck, repairProjection } from "./rebuild.ts";
export type { RebuildCheck, RepairResult } from "./rebuild.ts";
export { applyRewind, findStageConsumer, planRewind, renderPlan } from "./rewind.ts";
export type { RewindFrom, RewindPlan } from "./rewind.ts";
export { readStatus, renderStatus } from "./status.ts";
export type { ConsumerStatus, Status, StreamStatus } from "./status.ts";
export { readTrace, renderTrace, traceIdOf } from "./trace.ts";
export type { Trace, TraceDeadLetter, TraceHop } from "./trace.ts";
export { viewBlock, viewLine, viewOf } from "./view.ts";
export type { ViewedMessage } from "./view.ts";
