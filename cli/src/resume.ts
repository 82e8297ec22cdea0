import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type GetFlowsRequest,
  GetFlowsRequestSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
} from "@periscope/proto";

/** Nanoseconds since the epoch of a response's time, or undefined when it has none. */
function timeNs(resp: GetFlowsResponse): bigint | undefined {
  const t = resp.time;
  return t === undefined ? undefined : t.seconds * 1_000_000_000n + BigInt(t.nanos);
}

/** What identifies a response among those with the same time: the flow's uuid, else its bytes. */
function identity(resp: GetFlowsResponse): string {
  if (resp.responseTypes.case === "flow" && resp.responseTypes.value.uuid !== "") {
    return resp.responseTypes.value.uuid;
  }
  return Buffer.from(toBinary(GetFlowsResponseSchema, resp)).toString("base64");
}

/**
 * Where a follow stream got to, so a reconnect asks for what came after it: `since`
 * the last response's time, and responses at exactly that time that were already
 * printed are recognised and skipped.
 */
export class ResumePoint {
  #lastNs: bigint | undefined;
  #atLast = new Set<string>();
  /** The point the current stream resumed from; undefined before the first reconnect. */
  #resumedFrom: { ns: bigint; ids: ReadonlySet<string> } | undefined;
  readonly #startMs: number;

  constructor(nowMs: number = Date.now()) {
    this.#startMs = nowMs;
  }

  /**
   * True when `resp` belongs to what was printed before the last reconnect (and should
   * not print again). Within one stream nothing is skipped, so responses that arrive out
   * of time order (a lost event dated later than the flows after it) still print.
   */
  seen(resp: GetFlowsResponse): boolean {
    const from = this.#resumedFrom;
    const ns = timeNs(resp);
    if (from === undefined || ns === undefined) return false;
    return ns < from.ns || (ns === from.ns && from.ids.has(identity(resp)));
  }

  /** Records a response that was printed. */
  note(resp: GetFlowsResponse): void {
    const ns = timeNs(resp);
    if (ns === undefined) return;
    if (this.#lastNs === undefined || ns > this.#lastNs) {
      this.#lastNs = ns;
      this.#atLast = new Set();
    }
    if (ns === this.#lastNs) this.#atLast.add(identity(resp));
  }

  /**
   * The request that continues `original`: follow from the last time seen (or from
   * when the first stream started), no count, same filters and `until`.
   */
  request(original: GetFlowsRequest): GetFlowsRequest {
    if (this.#lastNs !== undefined) {
      this.#resumedFrom = { ns: this.#lastNs, ids: new Set(this.#atLast) };
    }
    const since =
      this.#lastNs === undefined
        ? timestampFromMs(this.#startMs)
        : {
            seconds: this.#lastNs / 1_000_000_000n,
            nanos: Number(this.#lastNs % 1_000_000_000n),
          };
    return create(GetFlowsRequestSchema, {
      follow: true,
      whitelist: original.whitelist,
      blacklist: original.blacklist,
      since,
      ...(original.until !== undefined ? { until: original.until } : {}),
    });
  }
}
