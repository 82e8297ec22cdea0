/**
 * Schema-specialised protobuf binary encoder. `compileEncoder(schema)` walks
 * the message descriptor once and returns an encoder made of closures, one per
 * field, that produces exactly the bytes of `toBinary(schema, msg)` from
 * @bufbuild/protobuf v2 (fields in field-number order, implicit-presence zero
 * values omitted, unboxed wrapper fields, unknown fields appended last) at a
 * fraction of its cost. Schemas it does not handle (anything but proto3, group
 * encoding, google.protobuf.Struct fields) get `toBinary` itself.
 * @see https://github.com/bufbuild/protobuf-es/blob/main/packages/protobuf/src/to-binary.ts
 */

import {
  type DescField,
  type DescMessage,
  type DescOneof,
  type MessageShape,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import {
  type FieldWriter,
  implicitField,
  implicitScalar,
  mapKey,
  type Obj,
  scalarValue,
  taggedScalar,
  tagOf,
  type ValueWriter,
  WIRE_LEN,
} from "./encoder-scalars.ts";
import {
  beginLength,
  EncodeError,
  encodeApart,
  endLength,
  varintSize,
  writeRaw,
  writeVarint32,
} from "./encoder-writer.ts";

export { EncodeError } from "./encoder-writer.ts";

const EDITION_PROTO3 = 999;
const IMPLICIT = 2;

/** Encoders of message bodies (fields without tag/length), shared by every compiled schema. */
const bodies = new WeakMap<DescMessage, FieldWriter>();

/**
 * Builds an encoder for `schema` whose output equals `toBinary(schema, msg)`
 * byte for byte. Compile once per schema (at module load), call per message.
 * Throws {@link EncodeError} for values `toBinary` also rejects (e.g. a
 * negative uint32).
 */
export function compileEncoder<Desc extends DescMessage>(
  schema: Desc,
): (msg: MessageShape<Desc>) => Uint8Array {
  if (!supported(schema, new Set())) return (msg) => toBinary(schema, msg);
  const body = bodyOf(schema);
  return (msg) => encodeApart(() => body(msg as unknown as Obj));
}

/**
 * Writer of tag + length + body of a `schema` message as field `no`, into the
 * writer's current output (no reset): for nesting inside a streamed message
 * (./encoder-stream.ts). Throws for schemas `compileEncoder` leaves to `toBinary`.
 */
export function compileNested(no: number, schema: DescMessage): (msg: unknown) => void {
  if (!supported(schema, new Set())) {
    throw new EncodeError(`${schema.typeName} cannot be encoded field by field`);
  }
  return nestedMessage(no, bodyOf(schema));
}

/** True if every message reachable from `desc` can be encoded here. */
function supported(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return true;
  seen.add(desc);
  if (desc.file.edition !== EDITION_PROTO3) return false;
  for (const f of desc.fields) {
    const msg =
      f.fieldKind === "message"
        ? f.message
        : f.fieldKind === "list" && f.listKind === "message"
          ? f.message
          : f.fieldKind === "map" && f.mapKind === "message"
            ? f.message
            : undefined;
    if (msg === undefined) continue;
    if ("delimitedEncoding" in f && f.delimitedEncoding) return false;
    // Struct fields are plain JSON objects in protobuf-es; leave them to toBinary.
    if (msg.typeName === "google.protobuf.Struct" && desc.typeName !== "google.protobuf.Value") {
      return false;
    }
    if (!supported(msg, seen)) return false;
  }
  return true;
}

/** Returns the body encoder of `desc`, building it on first use (recursion-safe). */
function bodyOf(desc: DescMessage): FieldWriter {
  const known = bodies.get(desc);
  if (known !== undefined) return known;
  let writers: FieldWriter[] = [];
  const body: FieldWriter = (m) => {
    for (let i = 0; i < writers.length; i++) (writers[i] as FieldWriter)(m);
    const unknown = m.$unknown as { no: number; wireType: number; data: Uint8Array }[] | undefined;
    if (unknown !== undefined) {
      for (const u of unknown) {
        writeVarint32(((u.no << 3) | u.wireType) >>> 0);
        writeRaw(u.data);
      }
    }
  };
  bodies.set(desc, body);
  writers = fieldWriters(desc);
  return body;
}

/** One writer per field in field-number order; a oneof whose members are adjacent gets one dispatcher. */
function fieldWriters(desc: DescMessage): FieldWriter[] {
  const sorted = desc.fields.concat().sort((a, b) => a.number - b.number);
  const out: FieldWriter[] = [];
  const done = new Set<DescOneof>();
  sorted.forEach((f, i) => {
    const oneof = f.oneof;
    if (oneof === undefined) {
      out.push(plainField(f));
      return;
    }
    if (done.has(oneof)) return;
    const run = sorted.slice(i, i + oneof.fields.length);
    if (run.every((g) => g.oneof === oneof)) {
      done.add(oneof);
      out.push(oneofDispatcher(oneof));
    } else {
      out.push(oneofMember(oneof, f));
    }
  });
  return out;
}

/** Tag + length + body of a nested message; the length reservation follows the last size seen. */
function nestedMessage(no: number, body: FieldWriter): ValueWriter {
  const tag = tagOf(no, WIRE_LEN);
  let reserve = 1;
  return (v) => {
    writeVarint32(tag);
    const start = beginLength(reserve);
    body(v as Obj);
    reserve = varintSize(endLength(start, reserve));
  };
}

/** A wrapper type (google.protobuf.UInt32Value, ...) held unboxed in a singular field. */
function unboxedWrapper(no: number, wrapper: DescMessage): ValueWriter {
  const inner = wrapper.fields[0];
  if (inner === undefined || inner.fieldKind !== "scalar") {
    throw new EncodeError(`wrapper ${wrapper.typeName} has no scalar value field`);
  }
  const value = implicitScalar(1, inner.scalar, `${wrapper.typeName}.value`);
  const tag = tagOf(no, WIRE_LEN);
  return (v) => {
    writeVarint32(tag);
    const start = beginLength(1);
    value(v);
    endLength(start, 1);
  };
}

/** Writer of a oneof member's value: written even when zero; messages are never unboxed. */
function memberValue(f: DescField): ValueWriter {
  const where = `${f.parent.typeName}.${f.name}`;
  switch (f.fieldKind) {
    case "scalar":
      return taggedScalar(f.number, f.scalar, where);
    case "enum":
      return taggedScalar(f.number, ScalarType.INT32, where);
    case "message":
      return nestedMessage(f.number, bodyOf(f.message));
    default:
      throw new EncodeError(`${where}: ${f.fieldKind} field in a oneof`);
  }
}

function oneofDispatcher(oneof: DescOneof): FieldWriter {
  const name = oneof.localName;
  const byCase = new Map<string, ValueWriter>(
    oneof.fields.map((f) => [f.localName, memberValue(f)]),
  );
  return (m) => {
    const o = m[name] as { case: string | undefined; value?: unknown };
    if (o.case === undefined) return;
    byCase.get(o.case)?.(o.value);
  };
}

function oneofMember(oneof: DescOneof, f: DescField): FieldWriter {
  const name = oneof.localName;
  const local = f.localName;
  const write = memberValue(f);
  return (m) => {
    const o = m[name] as { case: string | undefined; value?: unknown };
    if (o.case === local) write(o.value);
  };
}

/** Writer of a field outside any oneof. */
function plainField(f: DescField): FieldWriter {
  const name = f.localName;
  const where = `${f.parent.typeName}.${f.name}`;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const t = f.fieldKind === "scalar" ? f.scalar : ScalarType.INT32;
      if (f.presence !== IMPLICIT) {
        const write = taggedScalar(f.number, t, where);
        return (m) => {
          const v = m[name];
          if (v !== undefined) write(v);
        };
      }
      if (f.fieldKind === "enum") {
        const first = f.enum.values[0]?.number ?? 0;
        const write = taggedScalar(f.number, t, where);
        return (m) => {
          const v = m[name];
          if (v !== first) write(v === undefined ? first : v);
        };
      }
      return implicitField(name, f.number, t, where);
    }
    case "message": {
      const write = isWrapperDesc(f.message)
        ? unboxedWrapper(f.number, f.message)
        : nestedMessage(f.number, bodyOf(f.message));
      return (m) => {
        const v = m[name];
        if (v !== undefined) write(v);
      };
    }
    case "list":
      return listField(f, name, where);
    case "map":
      return mapField(f, name, where);
  }
}

function listField(f: DescField & { fieldKind: "list" }, name: string, where: string): FieldWriter {
  if (f.listKind === "message") {
    const write = nestedMessage(f.number, bodyOf(f.message));
    return (m) => {
      const a = m[name] as unknown[];
      for (let i = 0; i < a.length; i++) write(a[i]);
    };
  }
  const t = f.listKind === "scalar" ? f.scalar : ScalarType.INT32;
  if (!f.packed) {
    const write = taggedScalar(f.number, t, where);
    return (m) => {
      const a = m[name] as unknown[];
      for (let i = 0; i < a.length; i++) write(a[i]);
    };
  }
  const tag = tagOf(f.number, WIRE_LEN);
  const write = scalarValue(t, where);
  let reserve = 1;
  return (m) => {
    const a = m[name] as unknown[];
    if (a.length === 0) return;
    writeVarint32(tag);
    const start = beginLength(reserve);
    for (let i = 0; i < a.length; i++) write(a[i]);
    reserve = varintSize(endLength(start, reserve));
  };
}

function mapField(f: DescField & { fieldKind: "map" }, name: string, where: string): FieldWriter {
  const tag = tagOf(f.number, WIRE_LEN);
  const key = taggedScalar(1, f.mapKey, where);
  const toKey = mapKey(f.mapKey);
  const value =
    f.mapKind === "message"
      ? nestedMessage(2, bodyOf(f.message))
      : taggedScalar(2, f.mapKind === "scalar" ? f.scalar : ScalarType.INT32, where);
  return (m) => {
    const o = m[name] as Obj;
    for (const k of Object.keys(o)) {
      writeVarint32(tag);
      const start = beginLength(1);
      key(toKey(k));
      value(o[k]);
      endLength(start, 1);
    }
  };
}
