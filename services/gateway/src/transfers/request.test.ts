import { describe, expect, it } from "vitest";
import { checkIdempotencyKey, checkTransferRequest, requestHash } from "./request.ts";

const good = { from: "acc-1", to: "acc-2", amountMinor: 1250, currency: "EUR" };

describe("transfer request checks", () => {
  it("gateway - a well-formed request passes the structural checks", () => {
    expect(checkTransferRequest(good)).toEqual({ ok: true, value: good });
    // the boundary account is a valid source: money enters through it
    expect(checkTransferRequest({ ...good, from: "external" }).ok).toBe(true);
    // business rules are the validator's: zero, negative and unknown currencies pass here
    expect(checkTransferRequest({ ...good, amountMinor: -5, currency: "XXX" }).ok).toBe(true);
  });

  it("gateway - every wrong field is named with its rule", () => {
    const res = checkTransferRequest({ from: "", to: 7, amountMinor: 12.5, currency: "EURO", extra: true });
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.issues).toEqual([
      { field: "/from", rule: "must not be empty" },
      { field: "/to", rule: "must be string" },
      { field: "/amountMinor", rule: "must be integer" },
      { field: "/currency", rule: "must be 3 letters" },
      { field: "/extra", rule: "is not allowed" },
    ]);
  });

  it("gateway - missing fields, unsafe integers and long accounts are named", () => {
    const res = checkTransferRequest({ from: "a".repeat(65), amountMinor: 2 ** 60 });
    expect(res.ok ? [] : res.issues).toEqual([
      { field: "/from", rule: "must be at most 64 characters" },
      { field: "/to", rule: "is required" },
      { field: "/amountMinor", rule: "must be a safe integer" },
      { field: "/currency", rule: "is required" },
    ]);
    expect(checkTransferRequest({ ...good, amountMinor: "1250" })).toMatchObject({
      issues: [{ field: "/amountMinor", rule: "must be integer" }],
    });
  });

  it("gateway - a body that is not an object is one issue at the root", () => {
    for (const body of [null, [], "x", 3]) {
      expect(checkTransferRequest(body)).toEqual({
        ok: false,
        issues: [{ field: "/", rule: "must be an object" }],
      });
    }
  });

  it("gateway - stray fields are reported, boundedly", () => {
    const body: Record<string, unknown> = { ...good };
    for (let i = 0; i < 50; i++) body[`k${i}`] = i;
    body["a/b"] = 1;
    const res = checkTransferRequest(body);
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.issues).toHaveLength(11);
    expect(res.issues.at(-1)).toEqual({ field: "/", rule: "has 41 more fields that are not allowed" });
  });

  it("gateway - the idempotency key must be 1 to 128 characters of [A-Za-z0-9_.:-]", () => {
    expect(checkIdempotencyKey("order-42:retry_1.a")).toEqual({ ok: true, value: "order-42:retry_1.a" });
    expect(checkIdempotencyKey("k".repeat(128)).ok).toBe(true);
    expect(checkIdempotencyKey(undefined)).toEqual({
      ok: false,
      issues: [{ field: "header:Idempotency-Key", rule: "is required" }],
    });
    for (const bad of ["", "k".repeat(129), "has space", "a/b", "a, b", ["a", "b"]]) {
      expect(checkIdempotencyKey(bad).ok).toBe(false);
    }
  });

  it("gateway - an optional reference and metadata pass through (transfers.requested v2)", () => {
    const v2 = { ...good, reference: "invoice 42", metadata: { order: "o-9", "cost.centre": "ops" } };
    expect(checkTransferRequest(v2)).toEqual({ ok: true, value: v2 });
    expect(checkTransferRequest({ ...good, metadata: {} })).toEqual({
      ok: true,
      value: { ...good, metadata: {} },
    });
  });

  it("gateway - a reference or metadata past its bounds is named with its rule", () => {
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"]));
    const res = (body: Record<string, unknown>) => {
      const r = checkTransferRequest({ ...good, ...body });
      return r.ok ? [] : r.issues;
    };
    expect(res({ reference: "r".repeat(141) })).toEqual([
      { field: "/reference", rule: "must be at most 140 characters" },
    ]);
    expect(res({ reference: "" })).toEqual([{ field: "/reference", rule: "must not be empty" }]);
    expect(res({ reference: 7 })).toEqual([{ field: "/reference", rule: "must be string" }]);
    expect(res({ metadata: many })).toEqual([{ field: "/metadata", rule: "must have at most 16 entries" }]);
    expect(res({ metadata: ["a"] })).toEqual([{ field: "/metadata", rule: "must be an object of strings" }]);
    expect(res({ metadata: { "a/b c": "v", n: 1, long: "v".repeat(257) } })).toEqual([
      { field: "/metadata/a~1b c", rule: "key must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$" },
      { field: "/metadata/n", rule: "must be string" },
      { field: "/metadata/long", rule: "must be at most 256 characters" },
    ]);
  });

  it("gateway - the request hash of a v1-shaped request is unchanged; reference and metadata count", () => {
    // the hash an older gateway stored for `good`: its retries must still match
    expect(requestHash(good)).toBe("6e8ea2efe0a7f1cbc8880ab2b4c30f399d2b220e61d7339e98222e9c6b98394e");
    const withRef = { ...good, reference: "r" };
    expect(requestHash(withRef)).not.toBe(requestHash(good));
    expect(requestHash({ ...good, metadata: { a: "1", b: "2" } })).toBe(
      requestHash({ ...good, metadata: { b: "2", a: "1" } }),
    );
    expect(requestHash({ ...good, metadata: { a: "1" } })).not.toBe(
      requestHash({ ...good, metadata: { a: "2" } }),
    );
  });

  it("gateway - the request hash ignores key order but not values", () => {
    const reordered = { currency: "EUR", amountMinor: 1250, to: "acc-2", from: "acc-1" };
    expect(requestHash(reordered)).toBe(requestHash(good));
    expect(requestHash({ ...good, amountMinor: 1251 })).not.toBe(requestHash(good));
  });
});
