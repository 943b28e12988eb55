import type { Scenario } from "../scenario.ts";
import { bank } from "./bank.ts";
import { clusterFailover } from "./cluster-failover.ts";
import { consumerLoss } from "./consumer-loss.ts";
import { duplicateStorm } from "./duplicate-storm.ts";
import { natsRestart } from "./nats-restart.ts";
import { network } from "./network.ts";
import { pausePastLease } from "./pause-past-lease.ts";
import { redisLoss } from "./redis-loss.ts";
import { redisRollback } from "./redis-rollback.ts";
import { serviceKill } from "./service-kill.ts";
import { slowStage } from "./slow-stage.ts";

/** Every scenario, in the order `--scenario all` runs them. */
export const Scenarios: readonly Scenario[] = [
  serviceKill,
  natsRestart,
  clusterFailover,
  network,
  redisLoss,
  slowStage,
  duplicateStorm,
  redisRollback,
  consumerLoss,
  pausePastLease,
  bank,
];

/** The scenario called `name`. @throws naming the known scenarios. */
export function scenarioNamed(name: string): Scenario {
  const s = Scenarios.find((x) => x.name === name);
  if (!s)
    throw new Error(
      `unknown scenario ${JSON.stringify(name)}; known: ${Scenarios.map((x) => x.name).join(", ")}`,
    );
  return s;
}
