/**
 * @jetmesh/catalog: the one list of services. Each service's `manifest.json` is read as data
 * and checked against @jetmesh/contracts; what the mesh runner starts, what scripts/build.mjs
 * bundles, what chaos hits, which streams the quiet wait reads, and the NATS users of
 * @jetmesh/access derive from it, and tests compare docker-compose.yml and the Prometheus
 * scrape targets with it. A tool and deploy package: no service imports it.
 */
export { CatalogError, loadCatalog, servicesDir, usesNats } from "./catalog.ts";
export type { Catalog, CatalogService } from "./catalog.ts";
export { consumerContractIssues, writtenSchema } from "./consumer-contracts.ts";
export type { ProducerSchema } from "./consumer-contracts.ts";
export { bundlesOf, readManifests } from "./read.mjs";
export type {
  ManifestDeploy,
  ManifestInput,
  ManifestOutput,
  ManifestPort,
  ServiceManifest,
} from "./read.mjs";
