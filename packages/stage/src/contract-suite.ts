/**
 * The stage contract suite: one set of checks every stage runs unchanged, as every Watermill
 * Pub/Sub adapter runs the universal test suite. What it proves for one definition, on inputs
 * the stage's own test gives it:
 * - a replayed effect returns the same emissions (the plan run twice on one input, as a
 *   redelivery after a crash between effect and publish runs it: same emissions, same ids);
 * - only declared types are emitted (each emission's type is in `definition.emits`);
 * - outputs are deterministic (byte-identical encoded outputs and headers, ids derived from
 *   the input id) and valid against their contracts;
 * - a bad input (data that breaks its schema) is refused with a permanent error naming the
 *   field, before the handler runs, so nothing is emitted for it.
 * Test code only: it registers vitest tests.
 */
import {
  type AnyEnvelope,
  ContractError,
  checkEventData,
  decodeEvent,
  encodeEvent,
  type EventType,
  outputEventId,
} from "@jetmesh/contracts";
import { pack } from "msgpackr";
import { describe, expect, it } from "vitest";
import type { Emission, StageDefinition } from "./define-stage.ts";
import { PermanentError } from "./errors.ts";
import { outputEnvelopes } from "./outputs.ts";
import { handlerContext, publishedBytes, runPlan } from "./handler-harness.ts";

/** What a stage's test gives the suite; functions are called when the tests run (after beforeAll). */
export interface StageContractOptions<Deps> {
  /** The handler's deps, built as the stage's own tests build them (fakes or test servers). */
  readonly deps: Deps | (() => Deps);
  /** Valid inputs of the types the stage consumes, at least one. */
  readonly inputs: readonly AnyEnvelope[] | (() => readonly AnyEnvelope[]);
}

/** A broken promise of the contract; the message names the stage, the input and what differed. */
export class StageContractViolation extends Error {
  override readonly name = "StageContractViolation";
}

type Check = <In extends EventType, Deps>(
  def: StageDefinition<In, Deps>,
  deps: Deps,
  input: AnyEnvelope,
) => Promise<void>;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function fail(
  def: StageDefinition<never, never> | { name: string },
  input: AnyEnvelope,
  what: string,
): never {
  throw new StageContractViolation(`stage ${def.name}, input ${input.type} ${input.eventId}: ${what}`);
}

/** Runs the plan as a first delivery, then as a redelivery of the same message. */
async function twice<In extends EventType, Deps>(
  def: StageDefinition<In, Deps>,
  deps: Deps,
  input: AnyEnvelope,
) {
  const first = await runPlan(def, input, handlerContext(def.name, deps));
  const again = await runPlan(
    def,
    input,
    handlerContext(def.name, deps, {
      delivery: { stream: "TEST", subject: `${input.type}.00`, streamSequence: 1, deliveryCount: 2 },
    }),
  );
  return { first, again };
}

const ids = (def: { name: string }, input: AnyEnvelope, emissions: readonly Emission[]) =>
  outputEnvelopes(def.name, input, emissions, {
    declared: new Set(emissions.map((e) => e.type)),
    derived: true,
  }).map((o) => o.eventId);

/** The checks, each on one input; a failed one throws {@link StageContractViolation}. */
export const StageContractChecks: Readonly<
  Record<"replay" | "declared" | "deterministic" | "badInput", Check>
> = {
  async replay(def, deps, input) {
    const { first, again } = await twice(def, deps, input);
    if (!same(first, again))
      fail(def, input, `a replay emitted ${JSON.stringify(again)} after ${JSON.stringify(first)}`);
    if (!same(ids(def, input, first), ids(def, input, again)))
      fail(def, input, "a replay gave other output ids");
  },

  async declared(def, deps, input) {
    for (const e of await runPlan(def, input, handlerContext(def.name, deps)))
      if (!def.emits.includes(e.type))
        fail(def, input, `emitted ${e.type}, not in emits [${def.emits.join(", ")}]`);
  },

  async deterministic(def, deps, input) {
    const { first, again } = await twice(def, deps, input);
    for (const e of first) {
      const issues = checkEventData(e.type, e.data);
      if (issues.length) fail(def, input, `output ${e.type} breaks its contract: ${JSON.stringify(issues)}`);
    }
    const a = publishedBytes(def, input, first);
    const b = publishedBytes(def, input, again);
    if (
      a.length !== b.length ||
      a.some((x, i) => !sameBytes(x.body, b[i]!.body) || !same(x.headers, b[i]!.headers))
    )
      fail(def, input, "the same input gave different encoded outputs");
    const perType = new Map<string, number>();
    for (const [i, e] of first.entries()) {
      const index = perType.get(e.type) ?? 0;
      perType.set(e.type, index + 1);
      if (decodeEvent(a[i]!.body).eventId !== outputEventId(def.name, input.eventId, e.type, index))
        fail(def, input, `output ${e.type} #${index} has an id not derived from the input's`);
    }
  },

  async badInput(def, deps, input) {
    let calls = 0;
    const counted = {
      ...def,
      handle: (...args: Parameters<typeof def.handle>) => {
        calls++;
        return def.handle(...args);
      },
    };
    const bytes = pack({ ...input, data: breakFirstField(input.data) });
    let err: unknown;
    try {
      await runPlan(counted, receive(bytes), handlerContext(def.name, deps));
    } catch (e) {
      err = e;
    }
    if (calls > 0) fail(def, input, "the handler ran on an input that breaks its schema");
    if (
      !(err instanceof PermanentError) ||
      !(err.cause instanceof ContractError) ||
      err.cause.issues.length === 0
    )
      fail(
        def,
        input,
        `a bad input was not refused with a permanent error naming its fields: ${String(err)}`,
      );
  },
};

/**
 * What the runtime does with a message's body before the handler (process-message.ts): decode
 * and validate against the contract; a body that fails can never succeed, so it is permanent.
 * @throws PermanentError with the ContractError (its field issues) as cause.
 */
export function receive(bytes: Uint8Array): AnyEnvelope {
  try {
    return decodeEvent(bytes);
  } catch (err) {
    throw new PermanentError(`undecodable message: ${(err as Error).message}`, { cause: err });
  }
}

/** The data with its first field's type changed (a string becomes a number, anything else a string). */
function breakFirstField(data: unknown): unknown {
  const entries = Object.entries(data as Record<string, unknown>);
  const [key, value] = entries[0] ?? ["unexpected", 0];
  return { ...(data as object), [key]: typeof value === "string" ? 42 : "not-a-number" };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Registers the contract suite for `definition` as vitest tests (one per promise, each over
 * every input), named `<stage> - contract: …`. Call it at the top level of a test file, next to
 * the stage's own tests; build deps in `beforeAll` and pass them as a function.
 * @throws (in the tests) StageContractViolation naming the input and the broken promise.
 */
export function stageContract<In extends EventType, Deps>(
  definition: StageDefinition<In, Deps>,
  options: StageContractOptions<Deps>,
): void {
  const resolve = () => {
    const deps = typeof options.deps === "function" ? (options.deps as () => Deps)() : options.deps;
    const inputs = typeof options.inputs === "function" ? options.inputs() : options.inputs;
    const consumed = new Set<string>(definition.inputs.flatMap((i) => i.types));
    expect(inputs.length, "the contract suite needs at least one input").toBeGreaterThan(0);
    for (const input of inputs) {
      expect([...consumed], `${definition.name} consumes ${input.type}`).toContain(input.type);
      encodeEvent(input); // a test input that breaks its own contract would prove nothing
    }
    return { deps, inputs };
  };
  const run = (check: Check) => async () => {
    const { deps, inputs } = resolve();
    for (const input of inputs) await check(definition, deps, input);
  };
  const name = definition.name;
  describe(`${name} stage contract`, () => {
    it(
      `${name} - contract: a replayed effect returns the same emissions and ids`,
      run(StageContractChecks.replay),
    );
    it(`${name} - contract: only declared event types are emitted`, run(StageContractChecks.declared));
    it(
      `${name} - contract: outputs are deterministic, derived and valid`,
      run(StageContractChecks.deterministic),
    );
    it(`${name} - contract: an input that breaks its schema is refused`, run(StageContractChecks.badInput));
  });
}
