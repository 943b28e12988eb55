import { type FieldIssue, LedgerProjection, Roles } from "@jetmesh/contracts";
import { json, type Reply } from "../http/reply.ts";
import type { TransferRequest } from "../transfers/request.ts";
import type { Authenticator, Principal } from "./clients.ts";

/**
 * May `p` ask for this transfer? Money leaves `from`, so the client must own it; `external`
 * (minting) is an operator's alone and within its `mintMaxMinor`. Undefined when allowed,
 * else the field that is not the client's to ask for.
 */
export function transferDenied(
  auth: Authenticator,
  p: Principal,
  req: TransferRequest,
): FieldIssue | undefined {
  if (req.from === LedgerProjection.externalAccount) {
    if (p.role !== Roles.Operator)
      return {
        field: "/from",
        rule: `${req.from} (minting) is for operators; client ${p.clientId} is not one`,
      };
    if (req.amountMinor > (p.mintMaxMinor ?? 0))
      return {
        field: "/amountMinor",
        rule: `exceeds the mint limit of client ${p.clientId} (${p.mintMaxMinor ?? 0})`,
      };
    return undefined;
  }
  if (!auth.owns(p, req.from)) return { field: "/from", rule: `is not an account of client ${p.clientId}` };
  return undefined;
}

/** 403 naming the field the client may not use. */
export function forbidden(issue: FieldIssue): Reply {
  return json(403, { error: "forbidden", field: issue.field, detail: issue.rule });
}
