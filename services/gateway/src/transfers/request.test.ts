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

  it("gateway - the request hash ignores key order but not values", () => {
    const reordered = { currency: "EUR", amountMinor: 1250, to: "acc-2", from: "acc-1" };
    expect(requestHash(reordered)).toBe(requestHash(good));
    expect(requestHash({ ...good, amountMinor: 1251 })).not.toBe(requestHash(good));
  });
});
