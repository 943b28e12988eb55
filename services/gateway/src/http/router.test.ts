import { describe, expect, it } from "vitest";
import { json } from "./reply.ts";
import { createRouter } from "./router.ts";

const ok = () => json(200, {});
const match = createRouter([
  { method: "POST", template: "/v1/transfers", handle: ok },
  { method: "GET", template: "/v1/transfers/:id", handle: ok },
  { method: "GET", template: "/v1/accounts/:id", handle: ok },
]);

describe("router", () => {
  it("gateway - routes match by template and decode their parameters", () => {
    const m = match("GET", "/v1/accounts/bank%3Aacme");
    expect(m.kind).toBe("found");
    if (m.kind !== "found") return;
    expect(m.route.template).toBe("/v1/accounts/:id");
    expect(m.params).toEqual({ id: "bank:acme" });
    expect(match("HEAD", "/v1/transfers/t-1").kind).toBe("found");
  });

  it("gateway - a known path with another method is 405 with the allowed methods", () => {
    expect(match("DELETE", "/v1/transfers")).toEqual({
      kind: "method",
      template: "/v1/transfers",
      allow: ["POST"],
    });
    expect(match("POST", "/v1/transfers/t-1")).toMatchObject({ kind: "method", allow: ["GET"] });
  });

  it("gateway - unknown paths and broken escapes match nothing", () => {
    expect(match("GET", "/v1/transfers/a/b").kind).toBe("none");
    expect(match("GET", "/v2/transfers").kind).toBe("none");
    expect(match("GET", "/v1/accounts/%E0%A4%A").kind).toBe("none");
  });
});
