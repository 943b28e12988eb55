import { type CatalogService, loadCatalog } from "@jetmesh/catalog";

/**
 * The processes of the pipeline as the runner starts them, from the catalog
 * (`services/*\/manifest.json`, @jetmesh/catalog): a service added there is started, probed
 * and stopped with the others, with no list here to edit.
 */

/** One service the runner starts as its own process: its catalog entry (entry point, port variables, readiness path). */
export type ServiceSpec = CatalogService;

/**
 * The reference pipeline's services, named here only so that code addressing one of them
 * by name (`mesh.services.ledger`, a scenario's target) type-checks; what runs is the
 * catalog's list, and the mesh's test checks that each of these is in it.
 */
export type ReferenceService = "bank-sim" | "gateway" | "validator" | "risk" | "ledger" | "payout";

/** A service of the catalog. */
export type ServiceName = ReferenceService | (string & {});

/** One value per service: the reference ones by property, any other by index (maybe undefined). */
export type ByService<T> = Readonly<Record<ReferenceService, T>> & Readonly<Record<string, T>>;

const catalog = loadCatalog();

/** Names of the services, in pipeline order (the order reports list them in). */
export const ServiceNames: readonly ServiceName[] = catalog.names;

/** The catalog's services, keyed by name. */
export const Services: ByService<ServiceSpec> = Object.fromEntries(
  catalog.services.map((s) => [s.name, s]),
) as ByService<ServiceSpec>;

/** The service named `name`. @throws when the catalog has none. */
export function serviceSpec(name: ServiceName): ServiceSpec {
  return catalog.service(name);
}

/**
 * Every stream a service of the catalog reads or writes, in pipeline order, then the DLQ:
 * what the quiet wait reads (the invariant checker reads every stream the server has instead).
 */
export const CatalogStreams: readonly string[] = catalog.streams;
