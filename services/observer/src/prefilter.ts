import { create, isFieldSet, type MessageInitShape } from "@bufbuild/protobuf";
import { compileFlowFilter } from "@periscope/flow";
import {
  CiliumEventTypeSchema,
  DNSSchema,
  type Flow,
  type FlowFilter,
  FlowFilterSchema,
  FlowSchema,
  HTTPSchema,
  ICMPv4Schema,
  ICMPv6Schema,
  IGMPSchema,
  IPSchema,
  KafkaSchema,
  type Layer4,
  Layer4Schema,
  type Layer7,
  Layer7Schema,
  SCTPSchema,
  TCPSchema,
  UDPSchema,
  VRRPSchema,
} from "@periscope/proto";
import { type FlowColumns, L4_CASES, L7_CASES, NO_PORT, ROW_FLOW, UNKNOWN_ID } from "./columns.ts";

/** Three-valued answer of a column test: the flow surely does not match, surely does, or may. */
const NO = 0;
const YES = 1;
const MAYBE = 2;
type Tri = typeof NO | typeof YES | typeof MAYBE;

/** One FlowFilter field tested on a row. */
type RowTest = (slot: number) => Tri;

/**
 * A test on ring slots: false only for rows whose flow the request's filters reject for
 * sure. Rows that are not flows, or flows the columns cannot describe, always pass.
 */
export type Prefilter = (slot: number) => boolean;

/** FlowFilter fields (proto names) the columns answer exactly. */
export const PREFILTER_FIELDS: ReadonlySet<string> = new Set([
  "source_pod",
  "destination_pod",
  "source_ip",
  "destination_ip",
  "protocol",
  "source_port",
  "destination_port",
  "verdict",
  "event_type",
]);

/**
 * Decisions per interned string, computed on first use by `decide` and kept; strings
 * interned after the prefilter was built are decided when first met.
 */
class IdDecisions {
  #masks: IdMasks;
  constructor(cols: FlowColumns, decide: (s: string) => boolean) {
    this.#masks = new IdMasks(cols, (s) => (decide(s) ? YES : NO));
  }

  get(id: number): Tri {
    return id === UNKNOWN_ID ? MAYBE : (this.#masks.get(id) as Tri);
  }
}

/**
 * The filter's own predicate for the fields in `init`. Column tests evaluate it on a flow
 * that carries only what the columns hold, so they never disagree with the full filter.
 */
function fieldPredicate(init: MessageInitShape<typeof FlowFilterSchema>): (flow: Flow) => boolean {
  return compileFlowFilter(create(FlowFilterSchema, init));
}

/** Hubble's "[namespace/][pod-prefix]" value (as the pod filter parses it; validated there). */
function podPattern(value: string): { ns: string; prefix: string } {
  const slash = value.indexOf("/");
  if (slash < 0) return { ns: "default", prefix: value };
  return { ns: value.slice(0, slash), prefix: value.slice(slash + 1) };
}

/** Bit per pattern, as far as one int32 reaches. */
const MAX_MASK_PATTERNS = 31;

/**
 * Bitmasks per interned string, computed on first use and kept: `get` is a typed-array
 * read except the first time an id is seen.
 */
class IdMasks {
  cache: Int32Array;
  constructor(
    readonly cols: FlowColumns,
    readonly mask: (s: string) => number,
  ) {
    this.cache = new Int32Array(cols.interner.size + 64).fill(-1);
  }

  /** The mask of `id` (not {@link UNKNOWN_ID}). */
  get(id: number): number {
    const known = this.cache[id];
    return known !== undefined && known >= 0 ? known : this.#compute(id);
  }

  #compute(id: number): number {
    if (id >= this.cache.length) {
      const grown = new Int32Array(Math.max(this.cache.length * 2, id + 1)).fill(-1);
      grown.set(this.cache);
      this.cache = grown;
    }
    const m = this.mask(this.cols.interner.string(id) ?? "");
    this.cache[id] = m;
    return m;
  }
}

/**
 * source_pod / destination_pod: a namespace mask and a pod-name mask per interned string
 * (bit i: pattern i accepts it); the flow matches when both masks share a bit, unless the
 * endpoint has neither namespace nor pod name.
 */
function podTest(
  cols: FlowColumns,
  values: readonly string[],
  side: "source" | "destination",
): RowTest {
  const nsCol = side === "source" ? cols.srcNs : cols.dstNs;
  const podCol = side === "source" ? cols.srcPod : cols.dstPod;
  const patterns = values.map(podPattern);
  if (patterns.length > MAX_MASK_PATTERNS) return () => MAYBE;
  const nsMasks = new IdMasks(cols, (ns) =>
    patterns.reduce((m, p, i) => (p.ns === "" || p.ns === ns ? m | (1 << i) : m), 0),
  );
  const podMasks = new IdMasks(cols, (pod) =>
    patterns.reduce((m, p, i) => (pod.startsWith(p.prefix) ? m | (1 << i) : m), 0),
  );
  return (slot) => {
    const ns = nsCol[slot] as number;
    const pod = podCol[slot] as number;
    if (ns === UNKNOWN_ID || pod === UNKNOWN_ID) return MAYBE;
    if (ns === 0 && pod === 0) return NO;
    const nsMask = nsMasks.get(ns);
    if (nsMask === 0) return NO;
    return (nsMask & podMasks.get(pod)) !== 0 ? YES : NO;
  };
}

function ipTest(cols: FlowColumns, values: readonly string[], side: "source" | "destination") {
  const col = side === "source" ? cols.srcIp : cols.dstIp;
  const pred = compileFlowFilter(
    create(
      FlowFilterSchema,
      side === "source" ? { sourceIp: [...values] } : { destinationIp: [...values] },
    ),
  );
  const ids = new IdDecisions(cols, (ip) =>
    pred(
      create(FlowSchema, {
        IP: create(IPSchema, side === "source" ? { source: ip } : { destination: ip }),
      }),
    ),
  );
  return (slot: number): Tri => ids.get(col[slot] ?? 0);
}

/** A Layer4 with `code`'s member (see {@link L4_CASES}) and the given ports. */
function layer4(code: number, src = 0, dst = 0): Layer4 | undefined {
  const ports = { sourcePort: src, destinationPort: dst };
  switch (code) {
    case 1:
      return create(Layer4Schema, { protocol: { case: "TCP", value: create(TCPSchema, ports) } });
    case 2:
      return create(Layer4Schema, { protocol: { case: "UDP", value: create(UDPSchema, ports) } });
    case 3:
      return create(Layer4Schema, { protocol: { case: "ICMPv4", value: create(ICMPv4Schema) } });
    case 4:
      return create(Layer4Schema, { protocol: { case: "ICMPv6", value: create(ICMPv6Schema) } });
    case 5:
      return create(Layer4Schema, { protocol: { case: "SCTP", value: create(SCTPSchema, ports) } });
    case 6:
      return create(Layer4Schema, { protocol: { case: "VRRP", value: create(VRRPSchema) } });
    case 7:
      return create(Layer4Schema, { protocol: { case: "IGMP", value: create(IGMPSchema) } });
    default:
      return undefined;
  }
}

/** A Layer7 with the record member of `code` (see {@link L7_CASES}). */
function layer7(code: number): Layer7 | undefined {
  switch (code) {
    case 1:
      return create(Layer7Schema, { record: { case: "dns", value: create(DNSSchema) } });
    case 2:
      return create(Layer7Schema, { record: { case: "http", value: create(HTTPSchema) } });
    case 3:
      return create(Layer7Schema, { record: { case: "kafka", value: create(KafkaSchema) } });
    default:
      return undefined;
  }
}

function protocolTest(cols: FlowColumns, ff: FlowFilter): RowTest {
  const pred = fieldPredicate({ protocol: ff.protocol });
  const table = new Int8Array(L4_CASES.length * L7_CASES.length);
  for (let l4 = 0; l4 < L4_CASES.length; l4++) {
    for (let l7 = 0; l7 < L7_CASES.length; l7++) {
      const flow = create(FlowSchema, { l4: layer4(l4), l7: layer7(l7) });
      table[l4 * L7_CASES.length + l7] = pred(flow) ? YES : NO;
    }
  }
  return (slot) =>
    (table[(cols.l4[slot] ?? 0) * L7_CASES.length + (cols.l7[slot] ?? 0)] ?? MAYBE) as Tri;
}

function portTest(cols: FlowColumns, values: readonly string[], side: "source" | "destination") {
  const col = side === "source" ? cols.srcPort : cols.dstPort;
  const pred = compileFlowFilter(
    create(
      FlowFilterSchema,
      side === "source" ? { sourcePort: [...values] } : { destinationPort: [...values] },
    ),
  );
  const table = new Int8Array(NO_PORT + 1).fill(-1);
  return (slot: number): Tri => {
    const port = col[slot] ?? NO_PORT;
    const known = table[port] ?? -1;
    if (known >= 0) return known as Tri;
    // TCP carries the ports; without ports the flow is ICMP (no l4 ports either).
    const flow = create(FlowSchema, {
      l4: port === NO_PORT ? layer4(3) : layer4(1, port, port),
    });
    const v: Tri = pred(flow) ? YES : NO;
    table[port] = v;
    return v;
  };
}

function verdictTest(cols: FlowColumns, ff: FlowFilter): RowTest {
  const pred = fieldPredicate({ verdict: ff.verdict });
  const cache = new Map<number, Tri>();
  return (slot) => {
    const v = cols.verdict[slot] ?? 0;
    let t = cache.get(v);
    if (t === undefined) {
      t = pred(create(FlowSchema, { verdict: v })) ? YES : NO;
      cache.set(v, t);
    }
    return t;
  };
}

function eventTypeTest(cols: FlowColumns, ff: FlowFilter): RowTest {
  const pred = fieldPredicate({ eventType: ff.eventType });
  const cache = new Map<string, Tri>();
  return (slot) => {
    const has = cols.hasEventType[slot] === 1;
    const type = cols.eventType[slot] ?? 0;
    const sub = cols.eventSubType[slot] ?? 0;
    const key = has ? `${type}/${sub}` : "-";
    let t = cache.get(key);
    if (t === undefined) {
      const flow = create(FlowSchema, {
        eventType: has ? create(CiliumEventTypeSchema, { type, subType: sub }) : undefined,
      });
      t = pred(flow) ? YES : NO;
      cache.set(key, t);
    }
    return t;
  };
}

/** The column tests of one FlowFilter, or undefined when it sets a field the columns lack. */
function filterTests(cols: FlowColumns, ff: FlowFilter): RowTest[] | undefined {
  for (const field of FlowFilterSchema.fields) {
    if (isFieldSet(ff, field) && !PREFILTER_FIELDS.has(field.name)) return undefined;
  }
  const tests: RowTest[] = [];
  if (ff.sourcePod.length > 0) tests.push(podTest(cols, ff.sourcePod, "source"));
  if (ff.destinationPod.length > 0) tests.push(podTest(cols, ff.destinationPod, "destination"));
  if (ff.sourceIp.length > 0) tests.push(ipTest(cols, ff.sourceIp, "source"));
  if (ff.destinationIp.length > 0) tests.push(ipTest(cols, ff.destinationIp, "destination"));
  if (ff.protocol.length > 0) tests.push(protocolTest(cols, ff));
  if (ff.sourcePort.length > 0) tests.push(portTest(cols, ff.sourcePort, "source"));
  if (ff.destinationPort.length > 0) tests.push(portTest(cols, ff.destinationPort, "destination"));
  if (ff.verdict.length > 0) tests.push(verdictTest(cols, ff));
  if (ff.eventType.length > 0) tests.push(eventTypeTest(cols, ff));
  return tests;
}

/** AND of a filter's field tests as one test (NO as soon as one says NO). */
function allOf(tests: readonly RowTest[]): RowTest {
  const [a, b] = tests;
  if (tests.length === 1 && a !== undefined) return a;
  if (tests.length === 2 && a !== undefined && b !== undefined) {
    return (slot) => {
      const x = a(slot);
      if (x === NO) return NO;
      const y = b(slot);
      return y === NO ? NO : x === YES && y === YES ? YES : MAYBE;
    };
  }
  return (slot) => {
    let out: Tri = YES;
    for (let i = 0; i < tests.length; i++) {
      const v = (tests[i] as RowTest)(slot);
      if (v === NO) return NO;
      if (v === MAYBE) out = MAYBE;
    }
    return out;
  };
}

/**
 * Compiles Hubble's whitelist/blacklist into a test on {@link FlowColumns} rows: a row is
 * rejected when every whitelist filter surely fails on it or some blacklist filter surely
 * matches it. Undefined when the columns cannot rule anything out (no filters, or a
 * whitelist filter on fields they lack); the exact filter still decides every row that
 * passes. Call only with filters that compiled (the exact filter validates them).
 */
export function compilePrefilter(
  cols: FlowColumns,
  whitelist: readonly FlowFilter[],
  blacklist: readonly FlowFilter[],
): Prefilter | undefined {
  let allow: RowTest[] | undefined = [];
  for (const ff of whitelist) {
    const tests = filterTests(cols, ff);
    if (tests === undefined || tests.length === 0) {
      allow = undefined; // this filter may let anything through
      break;
    }
    allow.push(allOf(tests));
  }
  const deny: RowTest[] = [];
  for (const ff of blacklist) {
    const tests = filterTests(cols, ff);
    if (tests !== undefined) deny.push(allOf(tests));
  }
  const allowed = allow ?? [];
  if (allowed.length === 0 && deny.length === 0) return undefined;
  const kind = cols.kind;
  const only = allowed.length === 1 && deny.length === 0 ? allowed[0] : undefined;
  if (only !== undefined) return (slot) => kind[slot] !== ROW_FLOW || only(slot) !== NO;
  return (slot) => {
    if (kind[slot] !== ROW_FLOW) return true;
    if (allowed.length > 0) {
      let any = false;
      for (let i = 0; i < allowed.length; i++) {
        if ((allowed[i] as RowTest)(slot) !== NO) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    for (let i = 0; i < deny.length; i++) if ((deny[i] as RowTest)(slot) === YES) return false;
    return true;
  };
}
