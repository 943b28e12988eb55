import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import type { JsonSchema } from "./artifacts.ts";
import { decodeEvent, encodeEvent } from "./codec.ts";
import { EnvelopeSchema } from "./envelope.ts";
import { ContractError } from "./errors.ts";
import { arbitraryOf } from "./schema-arbitraries.ts";
import { type EventType, READ_VERSION, SchemaRegistry } from "./schemas.ts";

const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as JsonSchema;
/** The envelope's own fields, from its schema (data aside: it is each version's). */
const envelopeFields = (() => {
  const s = plain(EnvelopeSchema) as { properties: Record<string, JsonSchema>; required: string[] };
  const { data: _data, type: _type, version: _version, ...properties } = s.properties;
  return arbitraryOf({
    type: "object",
    properties,
    required: s.required.filter((k) => k in properties),
  });
})();

/** The data of `type`@`version` lifted as the codec lifts it, to the version readers see. */
function lifted(type: EventType, version: number, data: unknown): unknown {
  let d = data;
  for (let v = version; v < READ_VERSION[type]; v++)
    d = SchemaRegistry.find((e) => e.type === type && e.version === v)?.upcast?.(d);
  return d;
}

const envelopeOf = (type: EventType, version: number) =>
  fc
    .tuple(
      envelopeFields,
      arbitraryOf(plain(SchemaRegistry.find((e) => e.type === type && e.version === version)!.schema)),
    )
    .map(([env, data]) => ({ ...(env as object), type, version, data }));

const rawPackr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const RUNS = { numRuns: 150 };

/** A mutation of one field of valid data: the field it breaks. */
type Mutation = (data: Record<string, unknown>, field: string, schema: JsonSchema) => void;
const MUTATIONS: Readonly<Record<string, Mutation>> = {
  "wrong type": (d, f, s) => {
    d[f] = s.type === "string" ? 42 : "not-this-type";
  },
  "an object instead": (d, f) => {
    d[f] = { nested: true };
  },
  null: (d, f) => {
    d[f] = null;
  },
};

describe("codec properties", () => {
  for (const entry of SchemaRegistry) {
    const { type, version } = entry;
    const schema = plain(entry.schema) as { properties: Record<string, JsonSchema>; required: string[] };

    it(`codec - ${type}@${version} round trips exactly (read as v${READ_VERSION[type]})`, () => {
      fc.assert(
        fc.property(envelopeOf(type, version), (env) => {
          const decoded = decodeEvent(encodeEvent(env as never));
          expect(decoded).toEqual({
            ...env,
            version: READ_VERSION[type],
            data: lifted(type, version, env.data),
          });
          // and what was read is written back byte for byte at the version readers see
          if (version === READ_VERSION[type]) expect(encodeEvent(decoded)).toEqual(encodeEvent(env as never));
        }),
        RUNS,
      );
    });

    it(`codec - ${type}@${version} with a field broken is refused naming it, on write and on read`, () => {
      const fields = Object.keys(schema.properties);
      fc.assert(
        fc.property(
          envelopeOf(type, version),
          fc.constantFrom(...fields),
          fc.constantFrom(...Object.keys(MUTATIONS), "removed", "unknown field"),
          (env, field, how) => {
            const data = { ...(env.data as Record<string, unknown>) };
            let named = `/data/${field}`;
            if (how === "removed") {
              if (!schema.required.includes(field)) return; // removing an optional field is valid
              delete data[field];
            } else if (how === "unknown field") {
              data[`${field}Extra`] = 1;
              named = `/data/${field}Extra`;
            } else (MUTATIONS[how] as Mutation)(data, field, schema.properties[field] as JsonSchema);
            const bad = { ...env, data };
            const onWrite = catchOf(() => encodeEvent(bad as never));
            const onRead = catchOf(() => decodeEvent(rawPackr.pack(bad)));
            for (const err of [onWrite, onRead]) {
              expect(err).toBeInstanceOf(ContractError);
              // the field itself, or a place inside it (`/data/metadata/nested` for a map broken by an object)
              const fields = (err as ContractError).issues.map((i) => i.field);
              expect(
                fields.some((f) => f === named || f.startsWith(`${named}/`)),
                fields.join(", "),
              ).toBe(true);
            }
          },
        ),
        RUNS,
      );
    });
  }

  it("codec - any bytes, any envelope-shaped value: decoded or refused with a ContractError, never another throw", () => {
    const anyEnvelope = fc.record({
      eventId: fc.oneof(fc.string(), fc.anything()),
      type: fc.oneof(fc.constantFrom(...SchemaRegistry.map((e) => e.type)), fc.string()),
      version: fc.oneof(fc.integer({ min: -1, max: 5 }), fc.anything()),
      occurredAt: fc.constant(new Date(0).toISOString()),
      correlationId: fc.string(),
      causationId: fc.string(),
      producer: fc.string(),
      data: fc.anything(),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array(),
          anyEnvelope.map((v) => rawPackr.pack(v) as Uint8Array),
        ),
        (bytes) => {
          const err = catchOf(() => decodeEvent(bytes));
          if (err !== undefined) expect(err).toBeInstanceOf(ContractError);
        },
      ),
      { numRuns: 500 },
    );
  });
});

function catchOf(f: () => unknown): unknown {
  try {
    f();
    return undefined;
  } catch (err) {
    return err;
  }
}
