import { createHash } from "node:crypto";
import { namesFor } from "@jetmesh/contracts";

/**
 * The Redis users of jetmesh and what each may do: one user per service, least privilege.
 * Rules are Redis 7 ACL rules (https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/).
 * Every key pattern and command below is one the service's code uses; test/redis-access.test.ts
 * runs that code with these users against a real redis-server, so a new key or command shows
 * up there as a NOPERM before it does in production.
 */
export interface RedisUserGrant {
  /** ACL user name; the service sets it as REDIS_USERNAME. */
  readonly user: string;
  /** Who uses it and for what (the ACL file has no comments: for people and the CLI's output). */
  readonly purpose: string;
  /** Key patterns the user reads and writes (`~pattern`). */
  readonly keys: readonly string[];
  /** Key patterns the user only reads (`%R~pattern`, Redis 7). */
  readonly readKeys: readonly string[];
  /** Command rules applied after `-@all`, in order: `+cmd`, `+cmd|sub`, `+@category`, `-@category`. */
  readonly commands: readonly string[];
  /** All pub/sub channels (`&*`). Only the admin. */
  readonly allChannels?: boolean;
  /** Pub/sub channels it may publish and subscribe to (`&channel`); none when absent. */
  readonly channels?: readonly string[];
}

/** The user a replica authenticates as. */
export const REDIS_REPLICA_USER = "replica";

/**
 * The user the sentinels authenticate as: to the servers they monitor (`sentinel auth-user`)
 * and to each other (`sentinel sentinel-user`).
 */
export const REDIS_SENTINEL_USER = "sentinel";

/** Where sentinels announce themselves to each other, on every server they monitor. */
const SENTINEL_HELLO_CHANNEL = "__sentinel__:hello";

/**
 * What ioredis sends by itself: CLIENT SETNAME (createRedis names every connection), INFO (the
 * ready check, which waits while Redis loads its data), PING. HELLO and AUTH need no
 * permission. CLIENT SETINFO (Redis 7.2+) is left out: ioredis ignores its refusal, and
 * Redis 7.0 refuses to load an ACL file that names the subcommand.
 */
const CLIENT = ["+ping", "+info", "+client|setname"] as const;

/**
 * Lua scripts: ioredis's defineCommand sends EVAL on a connection's first use and EVALSHA
 * after; the services' own script runners send EVALSHA, then EVAL on NOSCRIPT. Redis checks
 * the keys a script is given against the user's patterns, and every command the script calls
 * against the same user's rules: EVAL grants nothing by itself.
 */
const SCRIPTS = ["+eval", "+evalsha"] as const;

/** The runtime's idempotency keys `{stage}:{eventId}` (packages/stage/src/idempotency-store.ts). */
const STAGE_KEYS = ["+get", "+set", "+pttl", "+pexpire"] as const;

/** A stage's idempotency keys: its durable name, a colon, the input's event id. */
const stageKeys = (stage: string): string => `${stage}:*`;

/** A stage that keeps nothing in Redis but its idempotency keys. */
const plainStage = (stage: string): RedisUserGrant => ({
  user: stage,
  purpose: `the ${stage} stage: its idempotency keys only`,
  keys: [stageKeys(stage)],
  readKeys: [],
  commands: [...CLIENT, ...SCRIPTS, ...STAGE_KEYS],
});

/**
 * The users every deployment gets, in the order the ACL file lists them: the reference
 * services, whose grants are written out here, and the tools' users. A stage the catalog
 * adds later gets its user from {@link redisUsers}.
 */
export const REDIS_USERS: readonly RedisUserGrant[] = [
  plainStage("validator"),
  {
    user: "risk",
    // `risk:*` is the stage's keys and the velocity windows `risk:velocity:<account>:<window>`
    // (services/risk/src/velocity.ts), one prefix.
    purpose: "the risk stage: its idempotency keys and the velocity windows (risk:velocity:*)",
    keys: [stageKeys("risk")],
    readKeys: [],
    commands: [...CLIENT, ...SCRIPTS, ...STAGE_KEYS, "+hget", "+hincrby", "+hset"],
  },
  {
    user: "ledger",
    // `ledger:*` is the projection (ledger:bal:*, ledger:outcome:*, ledger:accounts,
    // ledger:applied-seq, ledger:applied-id, ledger:epoch, ledger:restore-lock; store.ts and
    // lua.ts) and the stage's idempotency keys `ledger:<eventId>`. SCAN finds the keys a restore
    // wipes; it has no key argument, so Redis lets it list every key name (not read a value).
    purpose: "the ledger: its projection (balances, outcomes, marks, restore lock) and idempotency keys",
    keys: ["ledger:*"],
    readKeys: [],
    commands: [
      ...CLIENT,
      ...SCRIPTS,
      ...STAGE_KEYS,
      "+exists",
      "+mget",
      "+del",
      "+hgetall",
      "+hmget",
      "+hincrby",
      "+hset",
      "+sadd",
      "+scan",
    ],
  },
  plainStage("payout"),
  {
    user: "gateway",
    purpose:
      "the gateway: idempotency records (gateway:idem:*), rate limits (gateway:rate:*), the status " +
      "projection (status:*, stage keys gateway-status:*); reads balances (ledger:bal:*) and never writes them",
    keys: ["gateway:idem:*", "gateway:rate:*", "gateway-status:*", "status:*"],
    readKeys: ["ledger:bal:*"],
    commands: [
      ...CLIENT,
      ...SCRIPTS,
      ...STAGE_KEYS,
      // transfers/idempotency.ts's and auth/rate-limit.ts's scripts
      "+hget",
      "+hmget",
      "+hset",
      "+del",
      // status/status-store.ts: MULTI HSET PEXPIRE EXEC, HGETALL; accounts/balances.ts: HGETALL;
      // settle's script: HGET, HGET, then HSETNX claims a transfer's one latency observation
      "+multi",
      "+exec",
      "+hgetall",
      "+hsetnx",
      // auth/rate-limit.ts's token bucket (HMGET, HSET, PEXPIRE on gateway:rate:<client>)
      // reads Redis's clock so that gateways with skewed clocks agree.
      "+time",
    ],
  },
  {
    user: "reconciler",
    // services/reconciler/src/projection.ts: one MULTI of GET ledger:applied-seq, EXISTS
    // ledger:epoch and HGETALL ledger:bal:<account> per account; SSCAN ledger:accounts.
    // redis-health.ts: INFO memory and keyspace, and SCAN to count keys by kind (SCAN has no
    // key argument: it lists key names, never a value).
    purpose:
      "the reconciler: reads the ledger's balance projection to compare it with LEDGER, and Redis's memory and key names by kind; writes nothing",
    keys: [],
    readKeys: ["ledger:bal:*", "ledger:accounts", "ledger:applied-seq", "ledger:epoch"],
    commands: [...CLIENT, "+multi", "+exec", "+get", "+exists", "+hgetall", "+sscan", "+scan"],
  },
  {
    user: "ops",
    // `jetmesh ledger rebuild` (GET, SCAN, HGETALL) and operators looking around: every read,
    // no write. KEYS, SORT_RO and INFO's kin are in @dangerous; INFO is put back for the client.
    purpose: "operators and tools (the ledger's rebuild): read every key, write none",
    keys: [],
    readKeys: ["*"],
    commands: ["+@read", "-@dangerous", ...CLIENT],
  },
  {
    user: "replica",
    // What a replica sends its primary (masteruser/masterauth in replica-auth.conf).
    purpose: "a replica replicating from the primary",
    keys: [],
    readKeys: [],
    commands: ["+psync", "+replconf", "+ping"],
  },
  {
    user: REDIS_SENTINEL_USER,
    // What a sentinel sends a server it monitors (redis 7's src/sentinel.c), read from its
    // source and run in test/redis-sentinel-access.test.ts with real sentinels: CLIENT SETNAME on
    // each link; PING, INFO and PUBLISH of its hello on `__sentinel__:hello` every second or so,
    // SUBSCRIBE to that channel; SCRIPT KILL when the server answers BUSY; and a failover's one
    // transaction, MULTI, SLAVEOF (NO ONE, or the new primary), CONFIG REWRITE, CLIENT KILL TYPE
    // normal and pubsub, EXEC. A command refused inside MULTI aborts the whole EXEC: every one of
    // them is needed. No key, no other channel, no other CONFIG subcommand.
    purpose: "the Redis sentinels: watch both servers, and promote and repoint them in a failover",
    keys: [],
    readKeys: [],
    commands: [
      "+ping",
      "+info",
      "+client|setname",
      "+client|kill",
      "+subscribe",
      "+publish",
      "+script|kill",
      "+multi",
      "+slaveof",
      "+config|rewrite",
      "+exec",
    ],
    channels: [SENTINEL_HELLO_CHANNEL],
  },
  {
    user: "admin",
    purpose: "operators' administration (FLUSHALL, CONFIG, ACL, KEYS) and test and chaos tooling",
    keys: ["*"],
    readKeys: [],
    commands: ["+@all"],
    allChannels: true,
  },
];

/** Users that are not a service's: the tools', the replica's, the sentinels', the administrator's. */
const TOOL_USERS = new Set(["ops", REDIS_REPLICA_USER, REDIS_SENTINEL_USER, "admin"]);

/**
 * The users of a deployment whose stages are `stages` (the catalog's, `loadCatalog().stages`):
 * {@link REDIS_USERS}, and for each stage with no grant there a user of its own that keeps
 * nothing in Redis but its idempotency keys `<stage>:*`, among the services' users. A new
 * stage thus has its least-privilege user from its manifest alone; one that keeps more state
 * in Redis needs a grant written out above (test/redis-access.test.ts runs its code as it).
 */
export function redisUsers(stages: readonly string[], namespace = ""): readonly RedisUserGrant[] {
  const granted = new Set(REDIS_USERS.map((u) => u.user));
  const added = stages.filter((s) => !granted.has(s)).map(plainStage);
  const services = REDIS_USERS.filter((u) => !TOOL_USERS.has(u.user));
  const users = [...services, ...added, ...REDIS_USERS.filter((u) => TOOL_USERS.has(u.user))];
  // In a namespace (JETMESH_NAMESPACE) every key the services name carries its prefix.
  const prefix = namesFor(namespace).redisPrefix;
  if (!prefix) return users;
  const within = (patterns: readonly string[]) => patterns.map((k) => `${prefix}${k}`);
  return users.map((u) => ({ ...u, keys: within(u.keys), readKeys: within(u.readKeys) }));
}

/** `#<sha256 hex>`: how an ACL file holds a password. */
export function passwordHash(password: string): string {
  return `#${createHash("sha256").update(password, "utf8").digest("hex")}`;
}

/** One ACL file line for `grant`, holding the password's hash only. */
export function aclLine(grant: RedisUserGrant, password: string): string {
  const parts = [
    "user",
    grant.user,
    "reset",
    "on",
    passwordHash(password),
    ...(grant.allChannels ? ["&*"] : ["resetchannels", ...(grant.channels ?? []).map((c) => `&${c}`)]),
    ...grant.keys.map((k) => `~${k}`),
    ...grant.readKeys.map((k) => `%R~${k}`),
    "-@all",
    ...grant.commands,
  ];
  return parts.join(" ");
}

/**
 * The users.acl text: the `default` user off (no login, no commands, no keys), then one line
 * per grant with the hash of its password. Redis's ACL file has no comment syntax: the
 * purposes live in {@link REDIS_USERS} and in the package README.
 * @throws when a grant has no password, is named `default`, or two grants share a name.
 */
export function renderAclFile(
  grants: readonly RedisUserGrant[],
  passwords: ReadonlyMap<string, string>,
): string {
  const seen = new Set<string>();
  const lines = ["user default reset off resetchannels -@all"];
  for (const g of grants) {
    if (g.user === "default") throw new Error("the default user stays off");
    if (seen.has(g.user)) throw new Error(`redis user ${g.user} listed twice`);
    seen.add(g.user);
    const password = passwords.get(g.user);
    if (!password) throw new Error(`redis user ${g.user} has no password`);
    lines.push(aclLine(g, password));
  }
  return `${lines.join("\n")}\n`;
}

/** The grants as a Markdown table (user, read-write keys, read-only keys, commands, channels, purpose). */
export function formatRedisUsersTable(grants: readonly RedisUserGrant[] = REDIS_USERS): string {
  const code = (items: readonly string[]) => (items.length ? items.map((i) => `\`${i}\``).join(" ") : "none");
  const rows = [
    "| user | keys (read-write) | keys (read-only) | commands (after `-@all`) | channels | purpose |",
    "| --- | --- | --- | --- | --- | --- |",
    "| default | none | none | none (user off: no login) | none | a client that does not authenticate |",
    ...grants.map(
      (g) =>
        `| ${g.user} | ${code(g.keys)} | ${code(g.readKeys)} | ${code(g.commands).replaceAll("|", "\\|")} | ${g.allChannels ? "all" : code(g.channels ?? [])} | ${g.purpose} |`,
    ),
  ];
  return `${rows.join("\n")}\n`;
}
