/** One thing wrong with a value: the JSON path of the field and the rule it broke. */
export interface FieldIssue {
  /** JSON-pointer-like path, e.g. `/data/amountMinor`; `/` for the whole value. */
  readonly field: string;
  /** What the field must be, short and lowercase. */
  readonly rule: string;
}

/**
 * A value that does not match its contract. Never transient: the same bytes
 * will fail the same way, so the runtime parks such a message in the DLQ.
 */
export class ContractError extends Error {
  override readonly name = "ContractError";
  readonly issues: readonly FieldIssue[];
  constructor(message: string, issues: readonly FieldIssue[] = [], options?: { cause?: unknown }) {
    super(
      issues.length ? `${message}: ${issues.map((i) => `${i.field} ${i.rule}`).join("; ")}` : message,
      options,
    );
    this.issues = issues;
  }
}
