/**
 * Fills messages of any schema with random values, driven only by the
 * descriptor and a seeded PRNG, so encoder tests can compare against
 * `toBinary` on inputs nobody hand-picked. Test support only; not exported by
 * the package index.
 */

import { create, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

type Obj = Record<string, unknown>;

/** Deterministic 32-bit PRNG (mulberry32); returns values in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options of {@link randomMessage}. */
export interface RandomMessageOptions {
  /** Nesting depth below which message fields stay unset. */
  maxDepth: number;
  /** Put lone UTF-16 surrogates into strings (they do not survive a round trip). */
  loneSurrogates: boolean;
  /** Add an unknown varint field to some messages. */
  unknownFields: boolean;
}

const PIECES = ["a", "Z", "0", "-", ".", "é", "ß", "€", "中", "😀", " ", "/"];

/** Random message of `desc`; about a third of the fields stay at their zero value. */
export function randomMessage(
  desc: DescMessage,
  rnd: () => number,
  opts: RandomMessageOptions,
  depth = 0,
): Obj {
  const msg = create(desc) as unknown as Obj;
  const pick = (n: number): number => Math.floor(rnd() * n);
  const string = (): string => {
    let s = "";
    const n = rnd() < 0.1 ? 60 + pick(200) : pick(12);
    for (let i = 0; i < n; i++) s += PIECES[pick(PIECES.length)] ?? "";
    if (opts.loneSurrogates && rnd() < 0.2) s += rnd() < 0.5 ? "\ud83d" : "\udc00x";
    return s;
  };
  const big = (bits: number): bigint => BigInt(Math.floor(rnd() * 2 ** Math.min(bits, 53)));
  const scalar = (t: ScalarType): unknown => {
    const tiny = rnd() < 0.3;
    switch (t) {
      case ScalarType.STRING:
        return string();
      case ScalarType.BYTES:
        return Uint8Array.from({ length: tiny ? 1 : pick(300) }, () => pick(256));
      case ScalarType.BOOL:
        return rnd() < 0.5;
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return tiny ? pick(128) : Math.floor(rnd() * 2 ** 32);
      case ScalarType.INT32:
      case ScalarType.SINT32:
      case ScalarType.SFIXED32:
        return tiny ? pick(128) - 64 : Math.floor(rnd() * 2 ** 32) - 2 ** 31;
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return tiny ? big(7) : rnd() < 0.2 ? 2n ** 64n - 1n - big(20) : big(64);
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return tiny ? big(7) - 64n : rnd() < 0.3 ? -big(64) - 2n ** 62n : big(64);
      case ScalarType.DOUBLE:
        return (rnd() - 0.5) * 10 ** pick(20) || 1.5;
      case ScalarType.FLOAT:
        return Math.fround((rnd() - 0.5) * 10 ** pick(10)) || 0.25;
    }
  };
  const enumValue = (f: DescField & { enum: { values: { number: number }[] } }): number =>
    rnd() < 0.1 ? 1000 + pick(100) : (f.enum.values[pick(f.enum.values.length)]?.number ?? 0);
  const nested = (d: DescMessage): Obj => randomMessage(d, rnd, opts, depth + 1);
  const count = (): number => (rnd() < 0.4 ? 0 : 1 + pick(3));

  const value = (f: DescField, inOneof: boolean): unknown => {
    switch (f.fieldKind) {
      case "scalar":
        return scalar(f.scalar);
      case "enum":
        return enumValue(f);
      case "message":
        if (!inOneof && isWrapperDesc(f.message)) {
          const inner = f.message.fields[0];
          return inner?.fieldKind === "scalar"
            ? rnd() < 0.3
              ? undefined
              : scalar(inner.scalar)
            : undefined;
        }
        return depth >= opts.maxDepth ? undefined : nested(f.message);
      case "list":
        if (f.listKind === "message" && depth >= opts.maxDepth) return [];
        return Array.from({ length: count() }, () =>
          f.listKind === "scalar"
            ? scalar(f.scalar)
            : f.listKind === "enum"
              ? enumValue(f)
              : nested(f.message),
        );
      case "map": {
        const out: Obj = {};
        if (f.mapKind === "message" && depth >= opts.maxDepth) return out;
        for (let i = count(); i > 0; i--) {
          const k = String(scalar(f.mapKey));
          out[k] =
            f.mapKind === "scalar"
              ? scalar(f.scalar)
              : f.mapKind === "enum"
                ? enumValue(f)
                : nested(f.message);
        }
        return out;
      }
    }
  };

  for (const oneof of desc.oneofs) {
    const member = oneof.fields[pick(oneof.fields.length + 1)];
    if (member === undefined) continue;
    const v = value(member, true);
    if (v !== undefined) msg[oneof.localName] = { case: member.localName, value: v };
  }
  for (const f of desc.fields) {
    if (f.oneof !== undefined || rnd() < 0.35) continue;
    const v = value(f, false);
    if (v !== undefined) msg[f.localName] = v;
  }
  if (opts.unknownFields && rnd() < 0.1) {
    const no = 536_870_000 + pick(900);
    if (desc.fields.every((f) => f.number !== no)) {
      const data = Uint8Array.of(pick(128));
      msg.$unknown = [{ no, wireType: 0, data }];
    }
  }
  return msg;
}
