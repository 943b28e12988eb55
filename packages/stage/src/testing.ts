/**
 * @jetmesh/stage/testing: what a stage's own tests need to run its handler as the runtime
 * does, without NATS: a handler context, the plan run to its emissions, the bytes the runtime
 * would publish for them, and the stage contract suite every stage runs. Not for production code.
 */
export {
  receive,
  StageContractChecks,
  StageContractViolation,
  stageContract,
} from "./contract-suite.ts";
export type { StageContractOptions } from "./contract-suite.ts";
export { handlerContext, publishedBytes, runPlan } from "./handler-harness.ts";
