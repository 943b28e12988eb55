// The release before transfers.requested v2, built for real: the gateway and the validator as
// they ran before v2 was registered (readers know v1 only, producers write v1, the gateway
// refuses `reference` and `metadata` as unknown fields). Built like the simulator's mutants
// (scripts/build.mjs `buildVariant`): today's sources with the v2 change undone in memory,
// never in the tree. Each undo must match the source exactly once, so a change to those lines
// fails here instead of quietly building today's code as the "old" one.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { currentSchemaSet, registryDocuments, type SchemaSet } from "@jetmesh/contracts/evolution";
import { buildVariant } from "../../scripts/build.mjs";

const root = join(import.meta.dirname, "..", "..");

/** The release name the old deploy published. */
export const BEFORE_V2_RELEASE = "before-transfers-requested-v2";

/** One exact, single replacement. @throws naming the file when `from` is not there once. */
function undo(file: string, text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0)
    throw new Error(`${file}: cannot undo v2, expected exactly one ${JSON.stringify(from)}`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

const SCHEMAS = "packages/contracts/src/schemas.ts";
const REQUEST = "services/gateway/src/transfers/request.ts";

/** The contracts before v2: v1 the highest version (no upcast), producers write v1. */
function schemasBeforeV2(): string {
  let s = readFileSync(join(root, SCHEMAS), "utf8");
  s = undo(
    SCHEMAS,
    s,
    "  { type: EventTypes.TransferRequested, version: 1, schema: TransferRequestedV1, upcast: (d) => d },\n  { type: EventTypes.TransferRequested, version: 2, schema: TransferRequestedV2 },\n",
    "  { type: EventTypes.TransferRequested, version: 1, schema: TransferRequestedV1 },\n",
  );
  return undo(
    SCHEMAS,
    s,
    '"transfers.requested": { mode: "full", writes: 2 },',
    '"transfers.requested": { mode: "full", writes: 1 },',
  );
}

/** The gateway's request check before v2: the four fields of v1, anything else refused. */
function requestBeforeV2(): string {
  return undo(
    REQUEST,
    readFileSync(join(root, REQUEST), "utf8"),
    'const FIELDS = new Set(["from", "to", "amountMinor", "currency", "reference", "metadata"]);',
    'const FIELDS = new Set(["from", "to", "amountMinor", "currency"]);',
  );
}

/** The bundles of the old gateway and validator, under test/dist/before-v2/. */
export async function buildBeforeV2(): Promise<{ gateway: string; validator: string }> {
  const out = join(root, "test", "dist", "before-v2");
  const sources = { [SCHEMAS]: schemasBeforeV2(), [REQUEST]: requestBeforeV2() };
  const gateway = join(out, "gateway.mjs");
  const validator = join(out, "validator.mjs");
  await Promise.all([
    buildVariant("services/gateway/src/main.ts", gateway, sources),
    buildVariant("services/validator/src/main.ts", validator, sources),
  ]);
  return { gateway, validator };
}

/** The schema set the old build defines (this tree's, without transfers.requested v2). */
export function schemaSetBeforeV2(): SchemaSet {
  const set = currentSchemaSet();
  const t = set.types["transfers.requested"];
  if (!t?.versions["1"]) throw new Error("transfers.requested v1 is not registered");
  return {
    ...set,
    types: { ...set.types, "transfers.requested": { ...t, writes: 1, versions: { "1": t.versions["1"] } } },
  };
}

/** The registry the old deploy step published: the old set, released as it was. */
export function registryBeforeV2(): Map<string, unknown> {
  const set = schemaSetBeforeV2();
  return registryDocuments(set, { release: BEFORE_V2_RELEASE, ...set });
}
