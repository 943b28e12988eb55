/**
 * Bugs the simulator must find: each one planted alone, in a bundle of the simulator built
 * with that one source file changed (scripts/build.mjs `buildVariant`), never in the tree.
 * The kinds a careful review found, and each fix of the two exactly-once issues (10, 11)
 * reverted on its own. A mutant whose `find` text is no longer in its file fails the test:
 * a refactor must carry its mutants along, or the proof silently tests nothing.
 */
export interface Mutant {
  readonly name: string;
  /** What the bug is, in the words of the review or the issue it reverts. */
  readonly why: string;
  readonly file: string;
  /** Each `find` must occur exactly once in `file`; it is replaced by `replace`. */
  readonly edits: readonly { readonly find: string; readonly replace: string }[];
  /**
   * Set when the bug, planted alone, cannot change anything a check can see, because
   * another layer holds; says which. Such a mutant must still apply to the code, but is not
   * required to fail a world (packages/sim/README.md lists how many worlds it survived).
   */
  readonly equivalent?: string;
}

export const MUTANTS: readonly Mutant[] = [
  {
    name: "done-not-fenced",
    why: "review: the done mark is not tied to the attempt's token (an attempt paused past its lease marks done over the attempt that holds it)",
    equivalent:
      "both attempts publish the same derived output ids (the second is a duplicate) and every effect is idempotent per key (bank key, velocity per event, the ledger's decision from the log), so a stale done mark names the same outputs",
    file: "packages/stage/src/idempotency-store.ts",
    edits: [
      {
        find: "if v and string.sub(v, 1, 2) == 'L|' and string.sub(v, 1, string.len(a) + 3) ~= ('L|' .. a .. '|') then",
        replace: "if false then",
      },
    ],
  },
  {
    name: "renew-not-fenced",
    why: "issue 10 reverted: a lease is renewed whoever holds it (a lease that is not fenced is not a lock)",
    equivalent:
      "a paused attempt that keeps going publishes the live attempt's output ids (dropped as duplicates) and repeats only idempotent effects; the fence saves work, the ids and keys keep the money right",
    file: "packages/stage/src/idempotency-store.ts",
    edits: [
      {
        find: "  if v and string.sub(v, 1, string.len(a) + 3) == ('L|' .. a .. '|') then\n    redis.call('PEXPIRE', key, ARGV[i * 2])",
        replace: "  if v then\n    redis.call('PEXPIRE', key, ARGV[i * 2])",
      },
    ],
  },
  {
    name: "ack-before-done",
    why: "review: the input is acked before its effect, its outputs and its done mark (a crash in between loses it)",
    file: "packages/stage/src/process-message.ts",
    edits: [
      {
        find: "      let emissions: readonly Emission[];",
        replace: "      await ack(m);\n      let emissions: readonly Emission[];",
      },
    ],
  },
  {
    name: "output-id-not-derived",
    why: "review: an output's Msg-Id is not derived from the input's id and type (a redelivery publishes a new event)",
    file: "packages/contracts/src/ids.ts",
    edits: [
      {
        find: 'return deriveId("out", stage, inputEventId, type, String(index));',
        replace: 'return deriveId("out", stage, randomUUID(), type, String(index));',
      },
    ],
  },
  {
    name: "output-id-without-type",
    why: "issue 10 reverted: output ids are (stage, input, index), so a different second decision carries the first one's id",
    equivalent:
      "the ledger decides from the fold of LEDGER, so an input decided again gets the stored decision, never a different one; validator and risk are deterministic per input",
    file: "packages/contracts/src/ids.ts",
    edits: [
      {
        find: 'return deriveId("out", stage, inputEventId, type, String(index));',
        replace: 'return deriveId("out", stage, inputEventId, String(index));',
      },
    ],
  },
  {
    name: "bank-409-is-refusal",
    why: "review / issue 11 reverted: a 409 while the key is in flight is taken for a refusal (payouts.failed for a transfer the bank pays)",
    file: "services/payout/src/bank-client.ts",
    edits: [
      {
        find: "if (a.status === 422) return { paid: false, status: 422, reason: refusalReason(a.body) };",
        replace:
          "if (a.status === 422 || a.status === 409) return { paid: false, status: 422, reason: refusalReason(a.body) };",
      },
    ],
  },
  {
    name: "decide-behind-log",
    why: "review: a decision on state behind the log (the writer decides before its fold reached the end of LEDGER)",
    file: "services/ledger/src/ledger-writer.ts",
    edits: [
      {
        find: "if (!(await this.#o.follower.caughtUp(target, this.#o.catchUpTimeoutMs))) {",
        replace: "if (false) {",
      },
      { find: "      this.#tail = fold.seq;", replace: "      this.#tail = target;" },
    ],
  },
  {
    name: "debit-before-append",
    why: "review / issue 10 reverted: a decision counts as made before its append is committed (an append that failed leaves a debit the log lacks)",
    file: "services/ledger/src/ledger-writer.ts",
    edits: [
      {
        find: '        this.#answersDue--;\n        sent.state = "failed";\n        this.#overlay = undefined;',
        replace:
          '        this.#answersDue--;\n        sent.state = "stored";\n        r.resolve({ appended: true, seq: sent.seq });\n        for (const dep of sent.dependents) dep.resolve({ appended: false });\n        return;',
      },
    ],
  },
  {
    name: "projection-ignores-gaps",
    why: "issue 10 reverted: the Redis projection applies past a gap (Redis lost its latest writes and nothing notices)",
    file: "services/ledger/src/lua.ts",
    edits: [{ find: "if seq ~= applied + 1 then return {'gap', tostring(applied)} end", replace: "" }],
  },
  {
    name: "guard-expires-early",
    why: "review: a guard that expires before its stream's retention (the done mark lives as long as a lease)",
    file: "packages/stage/src/process-message.ts",
    edits: [
      {
        find: '          outputs.map((o) => o.eventId).join(","),\n          s.idempotencyTtlMs,',
        replace: '          outputs.map((o) => o.eventId).join(","),\n          s.leaseMs,',
      },
    ],
  },
  {
    name: "bank-key-is-event-id",
    why: "issue 11 reverted: the bank key is the ledger.posted event id, not the transfer's",
    equivalent:
      "the ledger never appends a second ledger.posted for a transfer (its decisions come from the log), and the payout record is per transfer; only a second posting would be paid twice",
    file: "services/payout/src/handler.ts",
    edits: [
      { find: "const key = bankKeyOf(t.transferId);", replace: "const key = bankKeyOf(event.eventId);" },
    ],
  },
  {
    name: "gateway-in-flight-is-done",
    why: "a key whose first request is still in flight is taken for a finished one: the repeat is answered 200 at once, before there is an answer to replay (pending conflated with done)",
    file: "services/gateway/src/transfers/idempotency.ts",
    edits: [
      {
        find: "if h[2] == 'done' then return {'done', h[5]} end",
        replace: "if h[2] == 'done' or h[2] == 'pending' then return {'done', h[5]} end",
      },
    ],
  },
];

/**
 * The text of `file` with `mutant`'s edits applied.
 * @throws when a `find` does not occur exactly once (the mutant no longer fits the code).
 */
export function mutate(mutant: Mutant, text: string): string {
  let out = text;
  for (const e of mutant.edits) {
    const first = out.indexOf(e.find);
    if (first < 0 || out.indexOf(e.find, first + 1) >= 0)
      throw new Error(
        `mutant ${mutant.name}: the text to replace occurs ${first < 0 ? "nowhere" : "more than once"} in ${mutant.file}`,
      );
    out = out.slice(0, first) + e.replace + out.slice(first + e.find.length);
  }
  return out;
}
