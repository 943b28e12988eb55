import {
  decodeFinding,
  encodeFinding,
  type Finding,
  type FindingKind,
  FindingKinds,
  findingHeaders,
  findingIdOf,
  findingSubject,
  type Names,
  namesFor,
  StreamNames,
} from "@jetmesh/contracts";
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { Logger } from "pino";

/** A discrepancy as a check reports it; the book adds ids, times and the instance. */
export interface Discrepancy {
  readonly kind: FindingKind;
  readonly key: string;
  readonly transferId?: string;
  readonly account?: string;
  readonly summary: string;
  readonly evidence: Record<string, unknown>;
  readonly command: string;
}

/** What the book knows of one finding: its last event on RECONCILE. */
export interface Entry {
  readonly finding: Finding;
  /** Stream sequence of that event: the subject's last sequence. */
  readonly seq: number;
}

/**
 * Kinds whose finding may open again after it closed: the same account can drift again, a
 * consumer can be changed by hand twice. A transfer stuck at a step, a DLQ message or an
 * overdraft at one sequence happens once.
 */
const REOPENS: ReadonlySet<FindingKind> = new Set([
  FindingKinds.ProjectionMismatch,
  FindingKinds.SettingsDrift,
  FindingKinds.BankMismatch,
]);

const WRONG_LAST_SEQUENCE = 10071;

/**
 * The findings on RECONCILE, shared by every reconciler instance: it follows the stream (the
 * reconciler hands it each message), and writes a transition (opened, closed) only after the
 * last event it knows on the finding's subject (`Nats-Expected-Last-Subject-Sequence`), with a
 * `Nats-Msg-Id` derived from the transition: two instances that find the same discrepancy
 * store one `opened`, and one `closed` when it resolves. A refused write means another
 * instance wrote first: the book reads that event and decides again.
 */
export class FindingBook {
  readonly #names: Names;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #log: Logger;
  readonly #instance: string;
  readonly #entries = new Map<string, Entry>();
  readonly #busy = new Set<string>();
  /** transferId → keys of its open stuck_transfer findings (one Map lookup per event read). */
  readonly #stuck = new Map<string, Set<string>>();
  readonly #onWrite: (f: Finding) => void;
  readonly #now: () => number;

  constructor(o: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    logger: Logger;
    instance: string;
    onWrite?: (f: Finding) => void;
    now?: () => number;
    /** JETMESH_NAMESPACE: RECONCILE and its subjects as named there. */
    namespace?: string;
  }) {
    this.#names = namesFor(o.namespace);
    this.#js = o.js;
    this.#jsm = o.jsm;
    this.#log = o.logger;
    this.#instance = o.instance;
    this.#onWrite = o.onWrite ?? (() => {});
    this.#now = o.now ?? Date.now;
  }

  /** Reads one RECONCILE message (from the follower). */
  read(m: JsMsg): void {
    this.#learn(decodeFinding(m.data), m.seq);
  }

  #learn(f: Finding, seq: number): void {
    const known = this.#entries.get(f.findingId);
    if (known && known.seq >= seq) return;
    this.#entries.set(f.findingId, { finding: f, seq });
    if (f.kind !== FindingKinds.StuckTransfer || !f.transferId) return;
    const keys = this.#stuck.get(f.transferId) ?? new Set<string>();
    if (f.state === "opened") keys.add(f.key);
    else keys.delete(f.key);
    if (keys.size) this.#stuck.set(f.transferId, keys);
    else this.#stuck.delete(f.transferId);
  }

  /** Keys of the stuck-transfer findings open for a transfer, whoever opened them. */
  openStuck(transferId: string): ReadonlySet<string> | undefined {
    return this.#stuck.get(transferId);
  }

  /** Every finding open now. */
  open(): Finding[] {
    return [...this.#entries.values()].filter((e) => e.finding.state === "opened").map((e) => e.finding);
  }

  get(kind: FindingKind, key: string): Entry | undefined {
    return this.#entries.get(findingIdOf(kind, key));
  }

  isOpen(kind: FindingKind, key: string): boolean {
    return this.get(kind, key)?.finding.state === "opened";
  }

  /** Opens the finding unless it is open (or closed for good). @returns true when this call wrote it. */
  async report(d: Discrepancy): Promise<boolean> {
    const id = findingIdOf(d.kind, d.key);
    return this.#transition(id, d.kind, (known) => {
      if (known?.finding.state === "opened") return undefined;
      if (known && !REOPENS.has(d.kind)) return undefined;
      const at = new Date(this.#now()).toISOString();
      return {
        findingId: id,
        kind: d.kind,
        state: "opened",
        key: d.key,
        ...(d.transferId !== undefined ? { transferId: d.transferId } : {}),
        ...(d.account !== undefined ? { account: d.account } : {}),
        summary: d.summary.slice(0, 1024),
        evidence: d.evidence,
        command: d.command,
        openedAt: at,
        at,
        instance: this.#instance,
      };
    });
  }

  /** Closes the finding if it is open, with what resolved it. @returns true when this call wrote it. */
  async resolve(
    kind: FindingKind,
    key: string,
    summary: string,
    evidence: Record<string, unknown>,
  ): Promise<boolean> {
    const id = findingIdOf(kind, key);
    return this.#transition(id, kind, (known) => {
      if (known?.finding.state !== "opened") return undefined;
      const o = known.finding;
      return {
        ...o,
        state: "closed",
        summary: summary.slice(0, 1024),
        evidence,
        at: new Date(this.#now()).toISOString(),
        instance: this.#instance,
      };
    });
  }

  async #transition(id: string, kind: FindingKind, next: (known: Entry | undefined) => Finding | undefined) {
    if (this.#busy.has(id)) return false;
    this.#busy.add(id);
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const known = this.#entries.get(id);
        const f = next(known);
        if (!f) return false;
        const after = known?.seq ?? 0;
        const h = natsHeaders();
        for (const [k, v] of Object.entries(findingHeaders(f, after))) h.set(k, v);
        try {
          const ack = await this.#js.publish(
            this.#names.subject(findingSubject(kind, id)),
            encodeFinding(f),
            {
              headers: h,
              msgID: h.get("Nats-Msg-Id"),
              expect: { lastSubjectSequence: after },
            },
          );
          if (ack.duplicate) {
            // Another instance stored this very transition: learn what is stored.
            await this.#refresh(kind, id);
            return false;
          }
          this.#learn(f, ack.seq);
          this.#onWrite(f);
          return true;
        } catch (err) {
          if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) {
            await this.#refresh(kind, id);
            continue;
          }
          throw err;
        }
      }
      return false;
    } finally {
      this.#busy.delete(id);
    }
  }

  /** Reads the last event on the finding's subject. */
  async #refresh(kind: FindingKind, id: string): Promise<void> {
    const m = await this.#jsm.streams.getMessage(this.#names.stream(StreamNames.Reconcile), {
      last_by_subj: this.#names.subject(findingSubject(kind, id)),
    });
    if (m) this.#learn(decodeFinding(m.data), m.seq);
    else this.#log.warn({ finding_id: id }, "finding subject is empty after a refused write");
  }
}
