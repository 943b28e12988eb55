// The face for tools and tests (`@jetmesh/contracts/evolution`): schema artifacts and the
// compatibility gate. Stages never need it; the codec applies what it decides.
export {
  ANNOTATIONS,
  artifactPath,
  artifactText,
  currentSchemaSet,
  renderSchemaArtifacts,
  schemaSetFromArtifacts,
  stripAnnotations,
  versionArtifact,
} from "./artifacts.ts";
export type { JsonSchema, ReleasedFile, SchemaSet, SchemaSetEntry } from "./artifacts.ts";
export { checkCompatibility, checkVersion, firstDifference, formatViolation } from "./compatibility.ts";
export type { Violation } from "./compatibility.ts";
