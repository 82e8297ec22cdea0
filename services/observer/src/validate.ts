import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { GetFlowsResponseSchema } from "@periscope/proto";
import { StoredEvent } from "./event.ts";
import { WIRE_LEN, WireFormatError, WireReader } from "./wire.ts";

/**
 * Checks that an encoded message parses as its schema says, without decoding it: every
 * tag is legal, every known field has the wire type its type needs (repeated scalars
 * packed or not), every length stays inside its parent, every nested message (to any
 * depth) and map entry checks out the same way, every string is valid UTF-8 (Go clients
 * such as the hubble CLI reject anything else), and unknown fields are well-formed.
 * Stricter than `fromBinary`, so whatever passes decodes in every client.
 */

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_SGROUP = 3;
const WT_EGROUP = 4;
const WT_I32 = 5;
/** Nesting deeper than this is rejected (protobuf C++ uses 100; our messages nest ~6). */
const MAX_DEPTH = 64;

/** How a field's value is laid out on the wire. */
enum Kind {
  Varint,
  I64,
  I32,
  Bytes,
  String,
  Message,
}

interface FieldPlan {
  readonly name: string;
  readonly kind: Kind;
  /** The wire type a single value of this field has. */
  readonly wire: number;
  /** Repeated numeric scalar: LEN (packed) is accepted besides the element's wire type. */
  readonly packable: boolean;
  /** Nested message plan, for Kind.Message and map entries. */
  readonly msg: MessagePlan | undefined;
}

/** Fields by number: an array for small numbers (most), a map for the rest. */
interface MessagePlan {
  readonly name: string;
  readonly near: (FieldPlan | undefined)[];
  readonly far: Map<number, FieldPlan>;
}

const NEAR = 128;

function field(name: string, kind: Kind, packable = false, msg?: MessagePlan): FieldPlan {
  return { name, kind, wire: WIRE_OF[kind], packable, msg };
}

function newPlan(name: string): MessagePlan {
  return { name, near: new Array<FieldPlan | undefined>(NEAR).fill(undefined), far: new Map() };
}

function addField(plan: MessagePlan, number: number, f: FieldPlan): void {
  if (number < NEAR) plan.near[number] = f;
  else plan.far.set(number, f);
}

function scalarKind(t: ScalarType): Kind {
  switch (t) {
    case ScalarType.STRING:
      return Kind.String;
    case ScalarType.BYTES:
      return Kind.Bytes;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return Kind.I64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return Kind.I32;
    default:
      return Kind.Varint;
  }
}

const plans = new Map<string, MessagePlan>();

/** The check plan of `desc` (built once per message type; recursive types share plans). */
function planFor(desc: DescMessage): MessagePlan {
  const known = plans.get(desc.typeName);
  if (known !== undefined) return known;
  const plan = newPlan(desc.name);
  plans.set(desc.typeName, plan);
  for (const f of desc.fields) addField(plan, f.number, fieldPlan(f));
  return plan;
}

function fieldPlan(f: DescField): FieldPlan {
  const name = f.name;
  switch (f.fieldKind) {
    case "scalar":
      return field(name, scalarKind(f.scalar));
    case "enum":
      return field(name, Kind.Varint);
    case "message":
      return field(name, Kind.Message, false, planFor(f.message));
    case "list": {
      if (f.listKind === "message") return field(name, Kind.Message, false, planFor(f.message));
      const kind = f.listKind === "enum" ? Kind.Varint : scalarKind(f.scalar);
      return field(name, kind, kind !== Kind.String && kind !== Kind.Bytes);
    }
    case "map": {
      const entry = newPlan("entry");
      addField(entry, 1, field("key", scalarKind(f.mapKey)));
      if (f.mapKind === "message") {
        addField(entry, 2, field("value", Kind.Message, false, planFor(f.message)));
      } else {
        addField(
          entry,
          2,
          field("value", f.mapKind === "enum" ? Kind.Varint : scalarKind(f.scalar)),
        );
      }
      return field(name, Kind.Message, false, entry);
    }
  }
}

/** A check failure; where it happened is in {@link trail}, {@link atDepth}, {@link atField}. */
class Invalid extends Error {}

/**
 * Where the walk is, kept in module state rather than try/catch per field (which halves
 * the speed): `trail[0..atDepth]` are the fields being read at each depth, and `atField`
 * tells whether the walk is inside the value of `trail[atDepth]` or between fields.
 */
const trail: (FieldPlan | undefined)[] = new Array(MAX_DEPTH + 1).fill(undefined);
let atDepth = 0;
let atField = false;

/** The field path of the failure being thrown, e.g. `flow.l4.TCP.source_port`. */
function failurePath(): string {
  const names: string[] = [];
  for (let d = 0; d < atDepth + (atField ? 1 : 0); d++) names.push(trail[d]?.name ?? "?");
  return names.join(".");
}

const WIRE_OF: Record<Kind, number> = {
  [Kind.Varint]: WT_VARINT,
  [Kind.I64]: WT_I64,
  [Kind.I32]: WT_I32,
  [Kind.Bytes]: WT_LEN,
  [Kind.String]: WT_LEN,
  [Kind.Message]: WT_LEN,
};

/** Position after the varint at `pos`; at most 10 bytes, the 10th at most 1 (64 bits). */
function varintEnd(buf: Uint8Array, pos: number, end: number): number {
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new Invalid("truncated varint");
    const b = buf[pos++] as number;
    if (b < 0x80) {
      if (i === 9 && b > 1) throw new Invalid("varint overflows 64 bits");
      return pos;
    }
  }
  throw new Invalid("varint longer than 10 bytes");
}

/**
 * Value of the varint at `pos`, a tag or a length (at most 5 bytes); sets
 * {@link scratchPos} to the position after it.
 */
function readVarint(buf: Uint8Array, pos: number, end: number): number {
  if (pos < end) {
    const b = buf[pos] as number;
    if (b < 0x80) {
      scratchPos = pos + 1;
      return b;
    }
  }
  const after = varintEnd(buf, pos, end);
  if (after - pos > 5) throw new Invalid("tag or length varint longer than 5 bytes");
  let v = 0;
  for (let p = pos, mul = 1; p < after; p++, mul *= 128) v += ((buf[p] as number) & 0x7f) * mul;
  scratchPos = after;
  return v;
}

/** Second result of {@link readVarint} and {@link payloadEnd}, kept here to allocate nothing. */
let scratchPos = 0;

/**
 * End of the length-delimited payload whose length prefix is at `pos`; sets
 * {@link scratchPos} to where the payload starts.
 */
function payloadEnd(buf: Uint8Array, pos: number, end: number): number {
  const len = readVarint(buf, pos, end);
  if (len > end - scratchPos) throw new Invalid(`length ${len} runs past the end of its message`);
  return scratchPos + len;
}

/** True when `buf[start, end)` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
export function isValidUtf8(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const b = buf[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return false;
    if (i + need >= end) return false;
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k] as number;
      if ((c & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += need + 1;
  }
  return true;
}

/** Steps over an unknown field's value; returns the position after it. */
function skipUnknown(
  buf: Uint8Array,
  pos: number,
  end: number,
  wt: number,
  number: number,
  depth: number,
): number {
  switch (wt) {
    case WT_VARINT:
      return varintEnd(buf, pos, end);
    case WT_I64:
    case WT_I32: {
      const next = pos + (wt === WT_I64 ? 8 : 4);
      if (next > end) throw new Invalid("fixed-width value runs past the end of its message");
      return next;
    }
    case WT_LEN:
      return payloadEnd(buf, pos, end);
    case WT_SGROUP: {
      if (depth >= MAX_DEPTH) throw new Invalid(`nested deeper than ${MAX_DEPTH}`);
      for (;;) {
        const tag = readVarint(buf, pos, end);
        pos = scratchPos;
        const f = Math.floor(tag / 8);
        if (tag % 8 === WT_EGROUP) {
          if (f !== number) throw new Invalid(`group ${number} closed by end-group ${f}`);
          return pos;
        }
        if (f === 0) throw new Invalid("field number 0");
        pos = skipUnknown(buf, pos, end, tag % 8, f, depth + 1);
      }
    }
    default:
      throw new Invalid(`field ${number} has wire type ${wt}, which no field can have here`);
  }
}

/** Checks `buf[pos, end)` against `plan`; throws {@link Invalid} naming what was wrong. */
function checkMessage(
  plan: MessagePlan,
  buf: Uint8Array,
  pos: number,
  end: number,
  depth: number,
): void {
  while (pos < end) {
    atDepth = depth;
    atField = false;
    const tag = readVarint(buf, pos, end);
    pos = scratchPos;
    const number = tag < 0x100000000 ? tag >>> 3 : Math.floor(tag / 8);
    const wt = tag & 7;
    if (number === 0) throw new Invalid("field number 0");
    if (wt > WT_I32) {
      throw new Invalid(`field ${number} has wire type ${wt}, which no field can have`);
    }
    const f = number < NEAR ? plan.near[number] : plan.far.get(number);
    if (f === undefined) {
      if (number > 0x1fffffff) throw new Invalid(`field number ${number} out of range`);
      pos = skipUnknown(buf, pos, end, wt, number, depth);
      continue;
    }
    trail[depth] = f;
    atField = true;
    pos = checkField(f, wt, buf, pos, end, depth);
  }
}

/** Checks one occurrence of field `f` with wire type `wt`; returns the position after it. */
function checkField(
  f: FieldPlan,
  wt: number,
  buf: Uint8Array,
  pos: number,
  end: number,
  depth: number,
): number {
  if (wt !== f.wire) {
    if (!f.packable || wt !== WT_LEN) {
      throw new Invalid(`wire type ${wt} where the field's type needs ${f.wire}`);
    }
    const stop = payloadEnd(buf, pos, end);
    const step = f.kind === Kind.I64 ? 8 : f.kind === Kind.I32 ? 4 : 0;
    let p = scratchPos;
    if (step > 0 && (stop - p) % step !== 0) {
      throw new Invalid(`packed length ${stop - p} is not a multiple of ${step}`);
    }
    if (step === 0) while (p < stop) p = varintEnd(buf, p, stop);
    return stop;
  }
  switch (f.kind) {
    case Kind.Varint:
      return varintEnd(buf, pos, end);
    case Kind.I64:
    case Kind.I32:
      return skipUnknown(buf, pos, end, wt, 0, depth);
    case Kind.Bytes:
      return payloadEnd(buf, pos, end);
    case Kind.String: {
      const stop = payloadEnd(buf, pos, end);
      if (!isValidUtf8(buf, scratchPos, stop)) throw new Invalid("string is not valid UTF-8");
      return stop;
    }
    case Kind.Message: {
      const stop = payloadEnd(buf, pos, end);
      if (depth >= MAX_DEPTH) throw new Invalid(`nested deeper than ${MAX_DEPTH}`);
      checkMessage(f.msg as MessagePlan, buf, scratchPos, stop, depth + 1);
      return stop;
    }
  }
}

const responsePlan = planFor(GetFlowsResponseSchema);

/**
 * Checks that `buf[start, end)` is a GetFlowsResponse every client can decode. Returns
 * undefined when it is, else what was wrong with the field path, e.g.
 * `flow.l4.TCP.flags: truncated varint`. Allocates nothing for a well-formed message.
 */
export function checkResponseBytes(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
): string | undefined {
  try {
    checkMessage(responsePlan, buf, start, end, 0);
    return undefined;
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    const path = failurePath();
    return path === "" ? err.message : `${path}: ${err.message}`;
  }
}

/** The events of a FlowBatch that passed the check, and what happened to the rest. */
export interface CheckedBatch {
  readonly events: StoredEvent[];
  /** Events dropped because they do not decode. */
  readonly rejected: number;
  /** What was wrong with the first rejected event (with its index in the batch). */
  readonly reason: string | undefined;
  /** Time of the earliest rejected event whose time could still be read, ns since the epoch. */
  readonly rejectedNs: bigint | undefined;
  /** Encoded `debug_events` (GetDebugEventsResponse, field 3), views into the payload. */
  readonly debugEvents: Uint8Array[];
}

/**
 * Splits an encoded FlowBatch into events like `readFlowBatch`, checking each one in
 * full ({@link checkResponseBytes}); an event that does not decode is left out and
 * counted. Throws {@link WireFormatError} when the batch itself is not a FlowBatch.
 */
export function readCheckedFlowBatch(payload: Uint8Array): CheckedBatch {
  const r = new WireReader(payload, 0, payload.length);
  const events: StoredEvent[] = [];
  let rejected = 0;
  let reason: string | undefined;
  let rejectedNs: bigint | undefined;
  const debugEvents: Uint8Array[] = [];
  for (let index = 0; r.pos < payload.length; ) {
    const tag = r.uint32();
    const wt = tag & 7;
    if (tag >>> 3 === 1 && wt === WIRE_LEN) {
      const end = r.lenEnd();
      const bad = checkResponseBytes(payload, r.pos, end);
      if (bad === undefined) events.push(StoredEvent.fromBytes(payload, r.pos, end));
      else {
        rejected++;
        reason ??= `event ${index}: ${bad}`;
        const ns = timeOf(payload, r.pos, end);
        if (ns !== undefined && (rejectedNs === undefined || ns < rejectedNs)) rejectedNs = ns;
      }
      index++;
      r.pos = end;
    } else if (tag >>> 3 === 3 && wt === WIRE_LEN) {
      const end = r.lenEnd();
      debugEvents.push(payload.subarray(r.pos, end));
      r.pos = end;
    } else if (tag >>> 3 === 0) {
      throw new WireFormatError("field number 0");
    } else {
      r.skip(wt);
    }
  }
  return { events, rejected, reason, rejectedNs, debugEvents };
}

/** The time of a rejected event as the shallow reader sees it; undefined if unreadable or 0. */
function timeOf(buf: Uint8Array, start: number, end: number): bigint | undefined {
  try {
    const ns = StoredEvent.fromBytes(buf, start, end).ns;
    return ns === 0n ? undefined : ns;
  } catch {
    return undefined; // its time is as broken as the rest; the caller uses the current time
  }
}
