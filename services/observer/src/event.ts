import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Flow, GetFlowsResponse } from "@periscope/proto";
import { GetFlowsResponseSchema } from "@periscope/proto";
import {
  type EndpointNamespace,
  readEndpoint,
  readTimestampNs,
  WIRE_LEN,
  WireFormatError,
  WireReader,
} from "./wire.ts";

export { type EndpointNamespace, WireFormatError } from "./wire.ts";

/** Nanoseconds since the epoch; undefined for a missing timestamp. */
export function timestampNs(ts: Timestamp | undefined): bigint | undefined {
  return ts === undefined ? undefined : ts.seconds * 1_000_000_000n + BigInt(ts.nanos);
}

/** GetFlowsResponse.time, else Flow.time, in ns since the epoch; 0 without either. */
export function responseNs(resp: GetFlowsResponse): bigint {
  const ev = resp.responseTypes;
  return timestampNs(resp.time ?? (ev.case === "flow" ? ev.value.time : undefined)) ?? 0n;
}

/** Which member of GetFlowsResponse.response_types an event carries. */
export type EventKind = "flow" | "nodeStatus" | "lostEvents" | undefined;

/** Most distinct node names and namespace lists interned (shared by every event). */
const INTERN_LIMIT = 65_536;
const nodeNames = new Map<string, string>();
const namespaceLists = new Map<string, readonly EndpointNamespace[]>();
const NO_NAMESPACES: readonly EndpointNamespace[] = Object.freeze([]);

/** One shared copy of each node name, so a million stored events do not hold a million. */
function internNode(name: string): string {
  const known = nodeNames.get(name);
  if (known !== undefined) return known;
  if (nodeNames.size < INTERN_LIMIT) nodeNames.set(name, name);
  return name;
}

/** One shared, frozen list per distinct endpoint namespace list. */
function internNamespaces(list: readonly EndpointNamespace[]): readonly EndpointNamespace[] {
  if (list.length === 0) return NO_NAMESPACES;
  const key = list.map((n) => `${n.cluster}\u0000${n.namespace}`).join("\u0001");
  const known = namespaceLists.get(key);
  if (known !== undefined) return known;
  const frozen = Object.freeze(list.map((n) => Object.freeze({ ...n })));
  if (namespaceLists.size < INTERN_LIMIT) namespaceLists.set(key, frozen);
  return frozen;
}

/** Most events read from bytes that keep their decoded message at once. */
export const DECODED_KEEP = 8192;

const KIND_BY_FIELD: readonly EventKind[] = [undefined, "flow", "nodeStatus", "lostEvents"];
/**
 * One stored event: its encoded GetFlowsResponse and the few fields the observer itself
 * needs (kind, node, time, endpoint namespaces). The full message is decoded only when
 * something asks for it (a filter), once, and shared by every reader.
 */
export class StoredEvent {
  readonly kind: EventKind;
  /** GetFlowsResponse.node_name. */
  readonly nodeName: string;
  /** GetFlowsResponse.time, else Flow.time, in ns since the epoch; 0 without either. */
  readonly ns: bigint;
  /** Namespaces of the flow's source and destination endpoints (flows only). */
  readonly namespaces: readonly EndpointNamespace[];
  /**
   * Stream sequence of the PERISCOPE_FLOWS message (batch) this event came in; 0 for
   * events the observer made itself. Set by ingest before the event is stored.
   */
  streamSeq = 0;
  /**
   * The buffer holding the encoding at [#start, #end) (for received events the whole
   * batch payload, shared by its events: no view object per event).
   */
  #buf: Uint8Array | undefined;
  #start = 0;
  #end = 0;
  #resp: GetFlowsResponse | undefined;

  private constructor(
    kind: EventKind,
    nodeName: string,
    ns: bigint,
    namespaces: readonly EndpointNamespace[],
    buf: Uint8Array | undefined,
    start: number,
    end: number,
    resp: GetFlowsResponse | undefined,
  ) {
    this.kind = kind;
    this.nodeName = internNode(nodeName);
    this.ns = ns;
    this.namespaces = internNamespaces(namespaces);
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
    this.#resp = resp;
  }

  /** Wraps a decoded message (tests, events the observer makes itself). */
  static fromResponse(resp: GetFlowsResponse): StoredEvent {
    const ev = resp.responseTypes;
    const ns = responseNs(resp);
    const namespaces: EndpointNamespace[] = [];
    if (ev.case === "flow") {
      for (const ep of [ev.value.source, ev.value.destination]) {
        if (ep && ep.namespace !== "") {
          namespaces.push({ cluster: ep.clusterName, namespace: ep.namespace });
        }
      }
    }
    return new StoredEvent(ev.case, resp.nodeName, ns, namespaces, undefined, 0, 0, resp);
  }

  /**
   * Reads the fields the observer needs from an encoded GetFlowsResponse at
   * `buf[start, end)`; throws {@link WireFormatError} when they are not well-formed.
   */
  static fromBytes(buf: Uint8Array, start = 0, end = buf.length): StoredEvent {
    const r = new WireReader(buf, start, end);
    let kind: EventKind;
    let nodeName = "";
    let respNs: bigint | undefined;
    /** Bounds of Flow.time, read only when GetFlowsResponse.time is absent. */
    let flowTime: [number, number] | undefined;
    const namespaces: EndpointNamespace[] = [];
    while (r.pos < end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wt = tag & 7;
      if (field >= 1 && field <= 3 && wt === WIRE_LEN) {
        const msgEnd = r.lenEnd();
        kind = KIND_BY_FIELD[field];
        if (field !== 1) {
          r.pos = msgEnd;
          continue;
        }
        // A oneof member seen twice merges on decode; the observer reads only the last.
        namespaces.length = 0;
        flowTime = undefined;
        while (r.pos < msgEnd) {
          const ftag = r.uint32();
          const ff = ftag >>> 3;
          const fwt = ftag & 7;
          if (fwt === WIRE_LEN && (ff === 1 || ff === 8 || ff === 9)) {
            const subEnd = r.lenEnd();
            if (ff === 1) {
              flowTime = [r.pos, subEnd];
              r.pos = subEnd;
            } else {
              const ep = readEndpoint(r, subEnd);
              if (ep) namespaces.push(ep);
            }
          } else r.skip(fwt);
        }
      } else if (field === 1000 && wt === WIRE_LEN) {
        nodeName = r.string();
      } else if (field === 1001 && wt === WIRE_LEN) {
        respNs = readTimestampNs(r, r.lenEnd());
      } else if (field === 0) {
        throw new WireFormatError("field number 0");
      } else {
        r.skip(wt);
      }
    }
    if (r.pos !== end) throw new WireFormatError("message overruns its bounds");
    if (kind !== "flow") namespaces.length = 0;
    let ns = respNs ?? 0n;
    if (respNs === undefined && flowTime !== undefined) {
      const tr = new WireReader(buf, flowTime[0], flowTime[1]);
      ns = readTimestampNs(tr, flowTime[1]);
    }
    return new StoredEvent(kind, nodeName, ns, namespaces, buf, start, end, undefined);
  }

  /**
   * The decoded message, decoded on first use. Events read from bytes keep it while they
   * are among the last {@link StoredEvent.decodedKeep} decoded (what concurrent followers share); a
   * scan over a large ring therefore does not keep every message it decoded.
   */
  get resp(): GetFlowsResponse {
    if (this.#resp === undefined) {
      this.#resp = fromBinary(GetFlowsResponseSchema, this.encoded ?? new Uint8Array());
      if (this.#buf !== undefined) StoredEvent.#keepDecoded(this);
    }
    return this.#resp;
  }

  /** How many events read from bytes keep their decoded message (default {@link DECODED_KEEP}). */
  static decodedKeep = DECODED_KEEP;
  static readonly #decoded: (StoredEvent | undefined)[] = [];
  static #decodedNext = 0;

  /** Remembers `ev` among the recently decoded; the one it displaces drops its message. */
  static #keepDecoded(ev: StoredEvent): void {
    const at = StoredEvent.#decodedNext % StoredEvent.decodedKeep;
    StoredEvent.#decodedNext = (at + 1) % StoredEvent.decodedKeep;
    const old = StoredEvent.#decoded[at];
    if (old !== undefined && old !== ev) old.#resp = undefined;
    StoredEvent.#decoded[at] = ev;
  }

  /** The flow, for flow events. */
  get flow(): Flow | undefined {
    const ev = this.resp.responseTypes;
    return ev.case === "flow" ? ev.value : undefined;
  }

  /**
   * A message to send that serializes to exactly this event's bytes: for received events
   * an otherwise empty GetFlowsResponse carrying the encoding as unknown fields, so it is
   * never re-encoded; for decoded ones the message itself.
   */
  wire(): GetFlowsResponse {
    const bytes = this.encoded;
    if (bytes === undefined || bytes.length === 0) return this.resp;
    // Made per call, not kept: a ring of stored events carries no second copy of itself.
    // The first tag becomes the unknown field's number and wire type; the rest of the
    // bytes follow it verbatim, so toBinary writes back exactly `bytes`.
    const r = new WireReader(bytes, 0, bytes.length);
    const tag = r.uint32();
    return {
      $typeName: GetFlowsResponseSchema.typeName,
      nodeName: "",
      responseTypes: { case: undefined },
      $unknown: [{ no: tag >>> 3, wireType: tag & 7, data: bytes.subarray(r.pos) }],
    };
  }

  /** The event's time in ms since the epoch (fractional), as a number. */
  get timeMs(): number {
    return Number(this.ns) / 1e6;
  }

  /**
   * Calls `read` with the buffer and bounds of the encoding this event was read from,
   * without making a view; undefined (and `read` not called) for decoded events.
   */
  withEncoding<T>(read: (buf: Uint8Array, start: number, end: number) => T): T | undefined {
    return this.#buf === undefined ? undefined : read(this.#buf, this.#start, this.#end);
  }

  /** The encoding this event was read from (a view), without encoding a decoded one. */
  get encoded(): Uint8Array | undefined {
    return this.#buf?.subarray(this.#start, this.#end);
  }

  /** The encoded GetFlowsResponse (a view of the received bytes, or encoded once). */
  bytes(): Uint8Array {
    if (this.#buf === undefined) {
      this.#buf = toBinary(GetFlowsResponseSchema, this.resp);
      this.#start = 0;
      this.#end = this.#buf.length;
      // Only events read from bytes take part in the decoded cache, and this one is not.
      return this.#buf;
    }
    return this.#buf.subarray(this.#start, this.#end);
  }
}

/**
 * Splits an encoded FlowBatch (`repeated GetFlowsResponse responses = 1`) into its
 * events without decoding them in full. Throws {@link WireFormatError} when malformed.
 */
export function readFlowBatch(payload: Uint8Array): StoredEvent[] {
  const r = new WireReader(payload, 0, payload.length);
  const out: StoredEvent[] = [];
  while (r.pos < payload.length) {
    const tag = r.uint32();
    const wt = tag & 7;
    if (tag >>> 3 === 1 && wt === WIRE_LEN) {
      const end = r.lenEnd();
      out.push(StoredEvent.fromBytes(payload, r.pos, end));
      r.pos = end;
    } else if (tag >>> 3 === 0) {
      throw new WireFormatError("field number 0");
    } else {
      r.skip(wt);
    }
  }
  return out;
}
