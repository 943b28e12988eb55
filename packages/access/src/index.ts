/**
 * @jetmesh/access: least privilege for the mesh's infrastructure. NATS: one NKey user per
 * service, allowed exactly what its stage needs, derived from services/*\/manifest.json and
 * the contracts; an ops, a deploy and a system user; the nats-server include that holds them.
 * Redis: one ACL user per service with its key patterns and commands, the replica's and the
 * sentinels' users, and the sentinels' own ACL. The gateway: its API
 * clients and transfer-id secrets. Every secret goes to a folder outside any git work tree.
 */
export { connectionNames, ownedBuckets, readManifests, usesNats } from "./manifests.ts";
export type { ManifestInput, ManifestOutput, ServiceManifest } from "./manifests.ts";
export {
  durableFilterOf,
  inboxPrefixOf,
  natsAccess,
  SERVICE_DENIED_API,
  UserKinds,
} from "./nats-permissions.ts";
export type {
  NatsAccess,
  NatsAccessOptions,
  SubjectRules,
  UserAccess,
  UserKind,
  UserPermissions,
} from "./nats-permissions.ts";
export { formatPermissionsTable, renderAuthConfig, renderRoutesConfig } from "./nats-config.ts";
export type { PublicKeys, RouteAuth } from "./nats-config.ts";
export { AccessFiles, writeNatsAccess } from "./nats-files.ts";
export type { WriteNatsAccessOptions, WrittenAccess } from "./nats-files.ts";
export { addGatewayClient, addIdSecret, GatewayFiles } from "./gateway.ts";
export type { AddGatewayClientOptions } from "./gateway.ts";
export { describeRedisAccess, redisAccess } from "./redis.ts";
export type { RedisAccess, RedisAccessOptions } from "./redis.ts";
export {
  aclLine,
  formatRedisUsersTable,
  passwordHash,
  REDIS_REPLICA_USER,
  REDIS_SENTINEL_USER,
  REDIS_USERS,
  redisUsers,
  renderAclFile,
} from "./redis-acl.ts";
export type { RedisUserGrant } from "./redis-acl.ts";
export { DEFAULT_SENTINEL_GROUP, renderSentinelAuth, sentinelUsers } from "./redis-sentinel.ts";
export { secretsFolder, writeSecretFile } from "./secret-files.ts";
