// The face for tools, tests and the runtime's start-up (`@jetmesh/contracts/evolution`): schema
// artifacts, the compatibility gate and the schema registry's documents and rules. A stage's
// own code never needs it; the codec applies what it decides.
export {
  ANNOTATIONS,
  artifactPath,
  artifactText,
  currentSchemaSet,
  ENVELOPE,
  nextReleasedFile,
  renderSchemaArtifacts,
  schemaSetFromArtifacts,
  stripAnnotations,
  versionArtifact,
} from "./artifacts.ts";
export type { JsonSchema, ReleasedFile, SchemaSet, SchemaSetEntry } from "./artifacts.ts";
export { checkCompatibility, checkVersion, firstDifference, formatViolation } from "./compatibility.ts";
export type { Violation } from "./compatibility.ts";
export {
  contractNeeds,
  deprecatedInputs,
  REGISTRY_BUCKET,
  REGISTRY_INDEX_KEY,
  registryDocuments,
  registryIssues,
  registrySchemaKey,
  releasedSchemas,
} from "./registry.ts";
export type {
  DeprecatedInput,
  ProducedSchema,
  RegistryIndex,
  RegistryType,
  RegistryView,
  ServiceContractNeeds,
} from "./registry.ts";
