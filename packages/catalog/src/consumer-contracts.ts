import { CURRENT_VERSION, type EventType, EventTypes, SchemaRegistry } from "@jetmesh/contracts";
import type { ServiceManifest } from "./read.mjs";

/** A JSON Schema object as the producer's current version defines it (plain data). */
export interface ProducerSchema {
  readonly properties?: Readonly<Record<string, { readonly type?: unknown; readonly anyOf?: unknown }>>;
  readonly required?: readonly string[];
}

/** The schema producers write today for `type` (its CURRENT_VERSION). */
export function writtenSchema(type: string): ProducerSchema | undefined {
  const version = CURRENT_VERSION[type as EventType];
  const entry = SchemaRegistry.find((e) => e.type === type && e.version === version);
  return entry ? (JSON.parse(JSON.stringify(entry.schema)) as ProducerSchema) : undefined;
}

/**
 * Consumer-driven contracts: every field a service declares it reads (manifest
 * `inputs[].reads`: event type → field → JSON type) must be a required field of that type in
 * the schema producers write today, and every event type a service consumes must declare what
 * it reads. Returns one line per broken promise, naming the consumer, event, field and rule;
 * empty when every producer serves every consumer.
 */
export function consumerContractIssues(
  manifests: readonly ServiceManifest[],
  schemaOf: (type: string) => ProducerSchema | undefined = writtenSchema,
): string[] {
  const out: string[] = [];
  const known = new Set<string>(Object.values(EventTypes));
  for (const m of manifests) {
    for (const [i, input] of (m.inputs ?? []).entries()) {
      const reads = input.reads ?? {};
      for (const type of input.types)
        if (!reads[type]) out.push(`${m.name} inputs[${i}] ${type}: declares no reads`);
      for (const [type, fields] of Object.entries(reads)) {
        const at = `${m.name} reads ${type}`;
        const schema = known.has(type) ? schemaOf(type) : undefined;
        if (!schema) {
          out.push(`${at}: no such event type`);
          continue;
        }
        const required = new Set(schema.required ?? []);
        for (const [field, want] of Object.entries(fields)) {
          const prop = schema.properties?.[field];
          if (!prop) out.push(`${at} /${field}: the producer's schema has no such field`);
          else if (!required.has(field)) out.push(`${at} /${field}: is optional in the producer's schema`);
          else if (jsonType(prop) !== want)
            out.push(
              `${at} /${field}: is ${JSON.stringify(jsonType(prop))} in the producer's schema, read as "${want}"`,
            );
        }
      }
    }
  }
  return out;
}

/** A property's JSON type; for an enumeration (`anyOf` of literals), the type all its members share. */
function jsonType(prop: { readonly type?: unknown; readonly anyOf?: unknown }): unknown {
  if (prop.type !== undefined || !Array.isArray(prop.anyOf)) return prop.type;
  const types = new Set(prop.anyOf.map((x: { type?: unknown }) => x?.type));
  return types.size === 1 ? [...types][0] : [...types];
}
