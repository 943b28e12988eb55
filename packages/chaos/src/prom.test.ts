import { describe, expect, it } from "vitest";
import { parseProm, promSum } from "./prom.ts";

describe("prometheus text", () => {
  it("chaos - samples summed by name and labels, comments and other metrics ignored", () => {
    const m = parseProm(
      [
        "# HELP jetmesh_messages_processed_total Input messages finished",
        "# TYPE jetmesh_messages_processed_total counter",
        'jetmesh_messages_processed_total{stage="ledger",stream="RISK",outcome="fenced"} 2',
        'jetmesh_messages_processed_total{stage="ledger",stream="PAYOUTS",outcome="fenced"} 3',
        'jetmesh_messages_processed_total{stage="ledger",stream="RISK",outcome="acked"} 40',
        'jetmesh_in_flight_messages{stage="ledger"} 1',
        "ledger_projection_repairs 4",
      ].join("\n"),
    );
    expect(promSum(m, "jetmesh_messages_processed_total", { stage: "ledger", outcome: "fenced" })).toBe(5);
    expect(promSum(m, "jetmesh_messages_processed_total")).toBe(45);
    expect(promSum(m, "ledger_projection_repairs")).toBe(4);
    expect(promSum(m, "missing")).toBe(0);
  });
});
