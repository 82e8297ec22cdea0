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
  #bytes: Uint8Array | undefined;
  #resp: GetFlowsResponse | undefined;
  #wire: GetFlowsResponse | undefined;

  private constructor(
    kind: EventKind,
    nodeName: string,
    ns: bigint,
    namespaces: readonly EndpointNamespace[],
    bytes: Uint8Array | undefined,
    resp: GetFlowsResponse | undefined,
  ) {
    this.kind = kind;
    this.nodeName = nodeName;
    this.ns = ns;
    this.namespaces = namespaces;
    this.#bytes = bytes;
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
    return new StoredEvent(ev.case, resp.nodeName, ns, namespaces, undefined, resp);
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
    return new StoredEvent(kind, nodeName, ns, namespaces, buf.subarray(start, end), undefined);
  }

  /** The decoded message (decoded on first use, then kept). */
  get resp(): GetFlowsResponse {
    if (this.#resp === undefined) {
      this.#resp = fromBinary(GetFlowsResponseSchema, this.#bytes ?? new Uint8Array());
    }
    return this.#resp;
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
    if (this.#wire !== undefined) return this.#wire;
    const bytes = this.#bytes;
    if (bytes === undefined || bytes.length === 0) {
      this.#wire = this.resp;
      return this.#wire;
    }
    // The first tag becomes the unknown field's number and wire type; the rest of the
    // bytes follow it verbatim, so toBinary writes back exactly `bytes`.
    const r = new WireReader(bytes, 0, bytes.length);
    const tag = r.uint32();
    this.#wire = {
      $typeName: GetFlowsResponseSchema.typeName,
      nodeName: "",
      responseTypes: { case: undefined },
      $unknown: [{ no: tag >>> 3, wireType: tag & 7, data: bytes.subarray(r.pos) }],
    };
    return this.#wire;
  }

  /** The encoding this event was read from, without encoding a decoded one. */
  get encoded(): Uint8Array | undefined {
    return this.#bytes;
  }

  /** The encoded GetFlowsResponse. */
  bytes(): Uint8Array {
    this.#bytes ??= toBinary(GetFlowsResponseSchema, this.resp);
    return this.#bytes;
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
