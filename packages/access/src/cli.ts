import { loadCatalog, type ServiceManifest, servicesDir } from "@jetmesh/catalog";
import { Command } from "commander";
import { natsAccess } from "./nats-permissions.ts";
import { formatPermissionsTable } from "./nats-config.ts";
import { writeNatsAccess } from "./nats-files.ts";
import { addGatewayClient, addIdSecret } from "./gateway.ts";
import { describeRedisAccess, redisAccess } from "./redis.ts";
import { formatRedisUsersTable, redisUsers } from "./redis-acl.ts";
import { DEFAULT_SENTINEL_GROUP, sentinelUsers } from "./redis-sentinel.ts";
import pkg from "../package.json" with { type: "json" };

// `jetmesh-access`: generates the mesh's NATS authorization from services/*/manifest.json and
// the contracts. Reads nothing from the environment.

const defaultServices = servicesDir;

/** The manifests, checked against the contracts first (a stream they do not define stops here), by name. */
const manifestsIn = (dir: string): ServiceManifest[] =>
  loadCatalog(dir)
    .services.map((s) => s.manifest)
    .sort((a, b) => a.name.localeCompare(b.name));

/** The Redis users: the written-out grants, and one of its own for every other stage of the catalog. */
const redisUsersIn = (dir: string, namespace: string) =>
  redisUsers(
    loadCatalog(dir).stages.map((s) => s.name),
    namespace,
  );
/** Dev isolation: names in this namespace (`namesFor` of @jetmesh/contracts). */
const NAMESPACE_HELP =
  "streams, subjects, buckets and Redis keys named in this namespace (default $JETMESH_NAMESPACE)";
const namespaceDefault = process.env.JETMESH_NAMESPACE?.trim() ?? "";

const hostPorts = (v: string): string[] => {
  const list = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const hp of list)
    if (!/^[A-Za-z0-9.-]+:\d+$/.test(hp)) throw new Error(`--routes: ${hp} is not host:port`);
  return list;
};

const program = new Command()
  .name("jetmesh-access")
  .version(pkg.version, "--version", "print the version and exit")
  .description(
    "NATS least privilege for jetmesh: users and permissions generated from the services' manifests",
  );

program
  .command("nats")
  .description(
    "writes <out>/nats-auth.conf (the include with the accounts and users) and <out>/<user>.nk (seeds, mode 0600)",
  )
  .requiredOption("--out <dir>", "secrets folder, outside any git work tree (created with mode 0700)")
  .option("--services <dir>", "folder of the services' manifest.json files", defaultServices)
  .option(
    "--routes <list>",
    "also write nats-routes.conf for cluster {}: route credentials and these host:port routes",
    hostPorts,
  )
  .option("--rotate", "new seeds and route password even where the folder has some", false)
  .option(
    "--no-runtime-creates",
    "services may not create missing streams and buckets; only the deploy user creates them",
  )
  .option("--namespace <ns>", NAMESPACE_HELP, namespaceDefault)
  .action(
    (o: {
      out: string;
      services: string;
      routes?: string[];
      rotate: boolean;
      runtimeCreates: boolean;
      namespace: string;
    }) => {
      const access = natsAccess({
        services: manifestsIn(o.services),
        runtimeCreates: o.runtimeCreates,
        namespace: o.namespace,
      });
      const w = writeNatsAccess({
        out: o.out,
        access,
        rotate: o.rotate,
        ...(o.routes ? { routes: o.routes } : {}),
      });
      console.log(`wrote ${w.authFile}`);
      if (w.routesFile) console.log(`wrote ${w.routesFile} (route credentials, mode 0600)`);
      for (const u of access.users) {
        const state = w.created.includes(u.name) ? "new seed" : "seed kept";
        console.log(`  ${u.name.padEnd(10)} ${w.publicKeys[u.name]}  ${w.seedFiles[u.name]} (${state})`);
      }
    },
  );

program
  .command("show")
  .description("prints the generated permissions per user (no keys) as a Markdown table, or JSON")
  .option("--services <dir>", "folder of the services' manifest.json files", defaultServices)
  .option("--json", "JSON instead of a table", false)
  .option("--no-runtime-creates", "as for `nats`")
  .option("--namespace <ns>", NAMESPACE_HELP, namespaceDefault)
  .action((o: { services: string; json: boolean; runtimeCreates: boolean; namespace: string }) => {
    const access = natsAccess({
      services: manifestsIn(o.services),
      runtimeCreates: o.runtimeCreates,
      namespace: o.namespace,
    });
    console.log(o.json ? JSON.stringify(access, null, 2) : formatPermissionsTable(access));
  });

program
  .command("redis")
  .description(
    "writes <out>/users.acl (Redis ACL, hashes only), <out>/<user>.password (0600), <out>/replica-auth.conf and <out>/sentinel-auth.conf (0600)",
  )
  .requiredOption("--out <dir>", "secrets folder, outside any git work tree (created with mode 0700)")
  .option("--services <dir>", "folder of the services' manifest.json files", defaultServices)
  .option("--rotate", "new passwords even where the folder has some", false)
  .option("--namespace <ns>", NAMESPACE_HELP, namespaceDefault)
  .option(
    "--sentinel-group <name>",
    "the name the sentinels monitor the primary under (sentinel.conf's `sentinel monitor`)",
    DEFAULT_SENTINEL_GROUP,
  )
  .action(
    async (o: {
      out: string;
      services: string;
      rotate: boolean;
      namespace: string;
      sentinelGroup: string;
    }) => {
      const users = redisUsersIn(o.services, o.namespace);
      const access = await redisAccess({
        out: o.out,
        rotate: o.rotate,
        users,
        sentinelGroup: o.sentinelGroup,
      });
      for (const line of describeRedisAccess(access)) console.log(line);
    },
  );

program
  .command("redis-users")
  .description("prints what each Redis user may do on the servers and on the sentinels, as Markdown tables")
  .option("--services <dir>", "folder of the services' manifest.json files", defaultServices)
  .option("--namespace <ns>", NAMESPACE_HELP, namespaceDefault)
  .action((o: { services: string; namespace: string }) => {
    const users = redisUsersIn(o.services, o.namespace);
    console.log(`## On the Redis servers\n\n${formatRedisUsersTable(users)}`);
    console.log(`## On the sentinels\n\n${formatRedisUsersTable(sentinelUsers(users))}`);
  });

const list = (v: string): string[] =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${v} is not a positive integer`);
  return n;
};

program
  .command("gateway-client")
  .description(
    "adds an API client to <out>/clients.json (GATEWAY_CLIENTS_FILE), or a new key to an existing one; prints the key once",
  )
  .requiredOption("--out <dir>", "the gateway's secrets folder, outside any git work tree")
  .requiredOption("--id <id>", "client id: [a-z0-9-], travels with its events")
  .option("--role <role>", "customer or operator (a new client)")
  .option("--accounts <list>", "accounts it owns, comma-separated; * for all (operators)", list)
  .option("--mint-max <minor>", "operators: the largest single mint", positiveInt)
  .option("--retire-others-at <iso>", "existing client: its current keys stop working then")
  .action(
    (o: {
      out: string;
      id: string;
      role?: string;
      accounts?: string[];
      mintMax?: number;
      retireOthersAt?: string;
    }) => {
      if (o.role !== undefined && o.role !== "customer" && o.role !== "operator")
        throw new Error("--role is customer or operator");
      const r = addGatewayClient({
        out: o.out,
        id: o.id,
        ...(o.role ? { role: o.role } : {}),
        ...(o.accounts ? { accounts: o.accounts } : {}),
        ...(o.mintMax !== undefined ? { mintMaxMinor: o.mintMax } : {}),
        ...(o.retireOthersAt ? { retireOthersAt: new Date(o.retireOthersAt) } : {}),
      });
      console.log(`${r.created ? "added client" : "added a key to client"} ${o.id} in ${r.file}`);
      console.log(`API key (shown once; only its SHA-256 is stored): ${r.key}`);
    },
  );

program
  .command("id-secret")
  .description("adds a transfer-id secret version to <out>/id-secrets.json (GATEWAY_ID_SECRETS_FILE)")
  .requiredOption("--out <dir>", "the gateway's secrets folder, outside any git work tree")
  .option(
    "--not-before <iso>",
    "keys made from then on use it (a rotation: after every gateway has the file)",
  )
  .action((o: { out: string; notBefore?: string }) => {
    const r = addIdSecret({ out: o.out, ...(o.notBefore ? { notBefore: new Date(o.notBefore) } : {}) });
    console.log(`added id secret version ${r.version} to ${r.file}`);
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`jetmesh-access: ${(err as Error).message}`);
  process.exitCode = 1;
}
