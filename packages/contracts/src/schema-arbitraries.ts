// Test support (imported by *.test.ts only; fast-check is a devDependency): fast-check
// arbitraries derived from the JSON Schemas themselves, so a property test covers every
// (type, version) the registry holds, including the ones added later, with no hand-written
// generator to fall behind. A small generator rather than an npm package: the schemas use a
// dozen keywords, fast-check's own `stringMatching` covers patterns, and a keyword this does
// not know throws, so a schema feature the generator would silently skip fails the tests
// instead of narrowing them.
import fc from "fast-check";
import type { JsonSchema } from "./artifacts.ts";

const KNOWN = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "minProperties",
  "maxProperties",
  "minLength",
  "maxLength",
  "pattern",
  "minimum",
  "maximum",
  "items",
  "minItems",
  "maxItems",
  "anyOf",
  "const",
  "enum",
  "$schema",
  "$id",
  "title",
  "description",
]);

/** Characters of any plane; lengths are counted in UTF-16 units, as the validator counts them. */
function stringOf(s: JsonSchema): fc.Arbitrary<string> {
  const min = (s.minLength as number | undefined) ?? 0;
  const max = (s.maxLength as number | undefined) ?? Math.max(min, 24);
  if (typeof s.pattern === "string")
    return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length >= min && x.length <= max);
  return fc
    .string({ unit: "binary", minLength: min, maxLength: Math.min(max, min + 40) })
    .filter((x) => x.length <= max);
}

function objectOf(s: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const props = (s.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((s.required ?? []) as string[]);
  const fixed = fc.record(Object.fromEntries(Object.entries(props).map(([k, v]) => [k, arbitraryOf(v)])), {
    requiredKeys: [...required],
  });
  const patterns = Object.entries((s.patternProperties ?? {}) as Record<string, JsonSchema>);
  if (patterns.length === 0) return fixed;
  const max = (s.maxProperties as number | undefined) ?? 8;
  const [pattern, value] = patterns[0] as [string, JsonSchema];
  if (patterns.length > 1 || Object.keys(props).length > 0)
    throw new Error("schema-arbitraries: patternProperties only alone, with one pattern");
  return fc
    .dictionary(stringOf({ pattern }), arbitraryOf(value), { maxKeys: max })
    .map((d) => Object.fromEntries(Object.entries(d)));
}

/**
 * An arbitrary of the values `schema` accepts (draft-07 subset the event schemas use).
 * @throws Error naming a keyword it does not know.
 */
export function arbitraryOf(schema: JsonSchema): fc.Arbitrary<unknown> {
  for (const k of Object.keys(schema))
    if (!KNOWN.has(k)) throw new Error(`schema-arbitraries: keyword ${k} is not supported`);
  if ("const" in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as JsonSchema[]).map(arbitraryOf));
  switch (schema.type) {
    case "string":
      return stringOf(schema);
    case "integer":
      return fc.integer({
        min: (schema.minimum as number | undefined) ?? Number.MIN_SAFE_INTEGER,
        max: (schema.maximum as number | undefined) ?? Number.MAX_SAFE_INTEGER,
      });
    case "boolean":
      return fc.boolean();
    case "array":
      return fc.array(arbitraryOf(schema.items as JsonSchema), {
        minLength: (schema.minItems as number | undefined) ?? 0,
        maxLength: (schema.maxItems as number | undefined) ?? Math.max(4, (schema.minItems as number) ?? 0),
      });
    case "object":
      return objectOf(schema);
    default:
      throw new Error(`schema-arbitraries: type ${JSON.stringify(schema.type)} is not supported`);
  }
}
