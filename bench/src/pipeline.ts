import type { RowContext, RowResult } from "./rows.ts";

/** Row 4: the whole pipeline through the gateway (written last). */
export async function pipelineRows(ctx: RowContext): Promise<RowResult[]> {
  ctx.log("bench: pipeline rows not written yet");
  return [];
}
