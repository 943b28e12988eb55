export {
  checkEventData,
  decodeEvent,
  decodeMessage,
  encodeEvent,
  eventHeaders,
  makeEnvelope,
} from "./codec.ts";
export type { HeaderLookup } from "./codec.ts";
export type { AnyEnvelope, Envelope } from "./envelope.ts";
export { ActorId, actorOf, EnvelopeContract, EnvelopeSchema, EnvelopeV1 } from "./envelope.ts";
export { ContractError } from "./errors.ts";
export type { FieldIssue } from "./errors.ts";
export { CONTENT_TYPE, Headers } from "./headers.ts";
export type { HeaderName } from "./headers.ts";
export { deriveId, newId, newTimedId, outputEventId, timeOfTimedId, uuidShaped } from "./ids.ts";
export {
  CompatibilityModes,
  AllEventTypes,
  CURRENT_VERSION,
  DeclineReason,
  EventContracts,
  READ_VERSION,
  EventTypes,
  LedgerDeclinedV1,
  LedgerPostedV1,
  LedgerReversedV1,
  PayoutCompletedV1,
  PayoutFailedV1,
  RejectionReason,
  RiskDecision,
  SchemaRegistry,
  TransferRejectedV1,
  TransferRequestedV1,
  TransferRequestedV2,
  TransferRequestLimits,
  TransferScoredV1,
  TransferValidatedV1,
} from "./schemas.ts";
export type {
  CompatibilityMode,
  EventContract,
  EventDataMap,
  EventType,
  LedgerDeclined,
  LedgerPosted,
  LedgerReversed,
  PayoutCompleted,
  PayoutFailed,
  PipelineEventType,
  SchemaEntry,
  TeamEventDataMap,
  TeamEventType,
  TransferRejected,
  TransferRequested,
  TransferScored,
  TransferValidated,
} from "./schemas.ts";
export { TeamStreams } from "./team-streams.ts";
export type { TeamStream } from "./team-streams.ts";
export {
  AccountId,
  AmountMinor,
  Currency,
  Id,
  TransferCore,
  transferCoreOf,
  transferEvent,
} from "./transfer-core.ts";
export type { TransferCoreData } from "./transfer-core.ts";
export type { BankPayout, BankRecord, BankRefusal } from "./bank-record.ts";
export {
  EVENT_MAX_AGE_MS,
  PipelineStreams,
  REPLAY_MAX_AGE_MS,
  replayDurable,
  StreamNames,
  Streams,
  streamOf,
  toStreamConfig,
  withLimits,
} from "./streams.ts";
export type { StreamConfigJson, StreamDefinition, StreamLimits, StreamName } from "./streams.ts";
export {
  PARTITIONS,
  auditSubject,
  dlqSubject,
  partitionOf,
  replaySubject,
  subjectFilter,
  subjectFor,
  typeOfSubject,
} from "./subjects.ts";
export { AccountPatterns, LedgerProjection } from "./projections.ts";
export { NAMESPACE_PATTERN, namesFor, namespaceProblem } from "./namespace.ts";
export type { Names } from "./namespace.ts";
export {
  decodeFinding,
  encodeFinding,
  FINDING_VERSION,
  FindingKinds,
  FindingStates,
  FindingV1,
  findingHeaders,
  findingIdOf,
  findingSubject,
} from "./reconcile.ts";
export type { Finding, FindingKind, FindingState } from "./reconcile.ts";
export {
  ClientsFileSchema,
  hashKey,
  newApiKey,
  parseClients,
  renderClientsFile,
  Roles,
} from "./api-clients.ts";
export type { ClientEntry, Role } from "./api-clients.ts";
export { IdSecretsFileSchema, newIdSecretVersion, renderIdSecretsFile } from "./id-secrets.ts";
export type { IdSecretsFile } from "./id-secrets.ts";
