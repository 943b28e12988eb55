/**
 * @jetmesh/new-stage: the generator behind `pnpm new:stage`. A tools package: no service imports it.
 */
export { addContractEntry, contractAdvice, contractEntry, TEAM_STREAMS_FILE } from "./contract-entry.ts";
export { generateStage, repoRoot } from "./generate.ts";
export type { GenerateOptions, Generated } from "./generate.ts";
export { NewStageError, planStage } from "./plan.ts";
export type { MissingContract, NewStageRequest, StagePlan } from "./plan.ts";
export { serviceFiles } from "./templates.ts";
export type { TemplateInput } from "./templates.ts";
