import { loadCatalog } from "@jetmesh/catalog";
import type { StreamName } from "@jetmesh/contracts";
import type { ServiceName } from "@jetmesh/mesh";

/**
 * What chaos knows of the stages, all from the catalog (services/*\/manifest.json): a stage
 * added there is killed, partitioned, watched and has its consumers lost like the others.
 */
const catalog = loadCatalog();

/** A jetmesh service a fault can hit. */
export type StageService = ServiceName;

/** The jetmesh services a fault can hit, in pipeline order (the bank is an external system). */
export const StageServices: readonly StageService[] = catalog.stages.map((s) => s.name);

/** Each stage of the money path and the stream it writes (its first output). */
export const StageOutputs: readonly { readonly stage: StageService; readonly output: StreamName }[] =
  catalog.stages.flatMap((s) => (s.outputs[0] ? [{ stage: s.name, output: s.outputs[0] }] : []));

/** Each stage's own durable consumers (durable name = stage name) on its input streams. */
export const StageInputs: readonly { readonly stage: StageService; readonly stream: StreamName }[] =
  catalog.stages.flatMap((s) =>
    s.inputs.filter((i) => i.durable === s.name).map((i) => ({ stage: s.name, stream: i.stream })),
  );
