import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { compileFilters } from "@periscope/flow";
import {
  type FlowFilter,
  FlowFilterSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  LostEventSchema,
  Verdict,
} from "@periscope/proto";
import { ROW_FLOW, ROW_OPAQUE } from "./columns.ts";
import { readFlowBatch, StoredEvent } from "./event.ts";
import { FlowMix } from "./flow-mix.ts";
import { type EventQuery, readEvents } from "./query.ts";
import { FlowStore } from "./store.ts";

const T0 = 1_700_000_000_000;
type FilterInit = MessageInitShape<typeof FlowFilterSchema>;

/** A GetFlowsResponse whose flow is the concatenation of `parts` (a decoder merges them). */
function mergedFlowEvent(timeMs: number, ...parts: MessageInitShape<typeof FlowSchema>[]) {
  const flowBytes = parts.map((p) => toBinary(FlowSchema, create(FlowSchema, p)));
  const flowLen = flowBytes.reduce((n, b) => n + b.length, 0);
  const head = toBinary(
    GetFlowsResponseSchema,
    create(GetFlowsResponseSchema, { nodeName: "n", time: timestampFromMs(timeMs) }),
  );
  const out = [...head, 0x0a];
  for (let v = flowLen; ; v >>>= 7) {
    if (v < 0x80) {
      out.push(v);
      break;
    }
    out.push((v & 0x7f) | 0x80);
  }
  for (const b of flowBytes) out.push(...b);
  return StoredEvent.fromBytes(Uint8Array.from(out));
}

/** A store with realistic flows (encoded and decoded) and the odd ones the columns must not misread. */
function buildStore(): FlowStore {
  const store = new FlowStore({ maxFlows: 4000 });
  const mix = new FlowMix({ namespaces: 6, podsPerNamespace: 12, seed: 7 });
  let t = T0;
  for (let b = 0; b < 25; b++) {
    for (const ev of readFlowBatch(mix.batch(100, t))) store.add(ev);
    t += 100;
  }
  for (let i = 0; i < 300; i++) store.add(StoredEvent.fromResponse(mix.response(t++)));
  const odd: MessageInitShape<typeof FlowSchema>[][] = [
    // the same endpoint twice: merged on decode
    [{ source: { namespace: "ns-1" } }, { source: { podName: "app-3-1-10" } }],
    [{ source: { namespace: "ns-1", podName: "x" } }, { source: { podName: "app-3-1-10" } }],
    // two Layer4 messages with different members: the last one wins
    [
      { l4: { protocol: { case: "TCP", value: { sourcePort: 1, destinationPort: 80 } } } },
      { l4: { protocol: { case: "UDP", value: { sourcePort: 2, destinationPort: 53 } } } },
    ],
    // IP and event_type merged
    [{ IP: { source: "10.1.0.1" } }, { IP: { destination: "10.2.0.1" } }],
    [{ eventType: { type: 4 } }, { eventType: { subType: 3 } }],
    // a verdict given twice: the last one counts
    [{ verdict: Verdict.DROPPED }, { verdict: Verdict.FORWARDED }],
    // ports beyond 16 bits
    [{ l4: { protocol: { case: "TCP", value: { sourcePort: 70_000, destinationPort: 80 } } } }],
  ];
  for (const parts of odd) store.add(mergedFlowEvent(t++, ...parts));
  const plain: MessageInitShape<typeof FlowSchema>[] = [
    { source: { podName: "xwing" }, destination: { namespace: "default", podName: "xwing-2" } },
    { source: { namespace: "default", podName: "xwing" }, IP: { source: "fd00::1" } },
    { source: { namespace: "ns-2" }, eventType: { type: 129, subType: 2 } },
    { destination: { podName: "app-1-4-8" }, l7: { record: { case: "kafka", value: {} } } },
    { l4: { protocol: { case: "SCTP", value: { sourcePort: 9, destinationPort: 9 } } } },
    { l4: { protocol: { case: "ICMPv6", value: {} } }, IP: { source: "fd00:0:0::2" } },
    { verdict: -3 as Verdict },
    {},
  ];
  for (const p of plain) {
    const resp = create(GetFlowsResponseSchema, {
      time: timestampFromMs(t++),
      responseTypes: { case: "flow", value: create(FlowSchema, p) },
    });
    store.add(StoredEvent.fromBytes(toBinary(GetFlowsResponseSchema, resp)));
  }
  const lost = create(GetFlowsResponseSchema, {
    time: timestampFromMs(t++),
    responseTypes: { case: "lostEvents", value: create(LostEventSchema, { numEventsLost: 3n }) },
  });
  store.add(StoredEvent.fromResponse(lost));
  return store;
}

const store = buildStore();

function matcher(wl: FlowFilter[], bl: FlowFilter[]): (ev: StoredEvent) => boolean {
  const filter = compileFilters(wl, bl);
  return (ev) => ev.kind !== "flow" || (ev.flow !== undefined && filter(ev.flow));
}

async function answer(
  q: EventQuery,
  wl: FlowFilter[],
  bl: FlowFilter[],
  withPre: boolean,
): Promise<number[]> {
  const out: number[] = [];
  const pre = withPre ? store.prefilter(wl, bl) : undefined;
  for await (const step of readEvents(store.ring, q, matcher(wl, bl), undefined, pre)) {
    if (step.kind === "event") out.push(Number(step.event.ns - BigInt(T0) * 1_000_000n));
  }
  return out;
}

const CASES: { name: string; wl?: FilterInit[]; bl?: FilterInit[]; selective?: boolean }[] = [
  {
    name: "pod + protocol",
    wl: [{ sourcePod: ["ns-1/app-3-1-10"], protocol: ["tcp"] }],
    selective: true,
  },
  { name: "namespace only", wl: [{ sourcePod: ["ns-2/"] }], selective: true },
  { name: "pod prefix any namespace", wl: [{ destinationPod: ["/app-1"] }], selective: true },
  { name: "all namespaces", wl: [{ sourcePod: ["/"] }], selective: true },
  { name: "default namespace", wl: [{ sourcePod: ["xwing"] }], selective: true },
  { name: "two pods", wl: [{ sourcePod: ["ns-3/app-2", "ns-4/app-5-4-5"] }], selective: true },
  {
    name: "dst pod + verdict",
    wl: [{ destinationPod: ["ns-0/"], verdict: [Verdict.DROPPED] }],
    selective: true,
  },
  { name: "source CIDR", wl: [{ sourceIp: ["10.2.0.0/24"] }], selective: true },
  {
    name: "IPv6 written differently",
    wl: [{ sourceIp: ["fd00:0::1", "fd00::2"] }],
    selective: true,
  },
  { name: "dest exact IP", wl: [{ destinationIp: ["10.2.0.1", "10.3.0.4"] }], selective: true },
  { name: "protocols", wl: [{ protocol: ["ICMP", "dns", "kafka", "sctp"] }], selective: true },
  { name: "http", wl: [{ protocol: ["http"] }], selective: true },
  { name: "ports", wl: [{ destinationPort: ["53", "80"] }], selective: true },
  { name: "source port", wl: [{ sourcePort: ["9", "1"] }], selective: true },
  { name: "verdicts", wl: [{ verdict: [Verdict.AUDIT, Verdict.DROPPED] }], selective: true },
  {
    name: "event type wildcard + sub",
    wl: [{ eventType: [{ type: 0 }, { type: 129, matchSubType: true, subType: 2 }] }],
    selective: true,
  },
  { name: "event type drop", wl: [{ eventType: [{ type: 1 }] }], selective: true },
  { name: "OR of filters", wl: [{ protocol: ["udp"] }, { sourcePod: ["ns-5/"] }], selective: true },
  { name: "unsupported field in whitelist", wl: [{ httpMethod: ["GET"] }] },
  { name: "supported and unsupported", wl: [{ protocol: ["tcp"], httpStatusCode: ["200"] }] },
  {
    name: "blacklist",
    bl: [{ protocol: ["tcp"] }, { verdict: [Verdict.DROPPED] }],
    selective: true,
  },
  { name: "blacklist unsupported", bl: [{ httpMethod: ["GET"] }, { sourcePod: ["ns-1/"] }] },
  {
    name: "white + black",
    wl: [{ sourcePod: ["ns-1/"] }],
    bl: [{ destinationPort: ["443"] }],
    selective: true,
  },
  { name: "empty whitelist filter", wl: [{}], bl: [{ protocol: ["icmp"] }], selective: true },
  { name: "empty blacklist filter", bl: [{}], selective: true },
];

const QUERIES: { name: string; q: EventQuery }[] = [
  { name: "all", q: { number: 0n, first: false, follow: false } },
  { name: "last 20", q: { number: 20n, first: false, follow: false } },
  { name: "first 20", q: { number: 20n, first: true, follow: false } },
  {
    name: "since + until",
    q: {
      number: 0n,
      first: false,
      follow: false,
      since: timestampFromMs(T0 + 1000),
      until: timestampFromMs(T0 + 2600),
    },
  },
  {
    name: "since, 5",
    q: { number: 5n, first: false, follow: false, since: timestampFromMs(T0 + 2000) },
  },
];

describe("prefilter", () => {
  test("prefilter - odd encodings are marked opaque, ordinary flows are columns", () => {
    const kinds = new Map<number, number>();
    for (let i = store.ring.oldest; i < store.ring.next; i++) {
      const k = store.columns.kind[i % store.ring.capacity] ?? -1;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    expect(kinds.get(ROW_OPAQUE)).toBe(6);
    expect(kinds.get(ROW_FLOW)).toBe(2500 + 300 + 1 + 8);
  });

  test.each(CASES)("prefilter - never rejects a flow the filter accepts: $name", (c) => {
    const wl = (c.wl ?? []).map((f) => create(FlowFilterSchema, f));
    const bl = (c.bl ?? []).map((f) => create(FlowFilterSchema, f));
    const match = matcher(wl, bl);
    const pre = store.prefilter(wl, bl);
    let rejected = 0;
    let matched = 0;
    /** Flows described by the columns that the filter rejects. */
    let columnRejects = 0;
    for (let i = store.ring.oldest; i < store.ring.next; i++) {
      const ev = store.ring.at(i) as StoredEvent;
      const m = match(ev);
      if (m) matched++;
      else if (store.columns.kind[i % store.ring.capacity] === ROW_FLOW) columnRejects++;
      if (pre !== undefined && !pre(i)) {
        rejected++;
        expect({ index: i, matches: m }).toEqual({ index: i, matches: false });
      }
    }
    expect(matched).toBeGreaterThan(0);
    // Where the columns know every field, they rule out every flow they describe that the
    // filter rejects; otherwise some of them at most.
    if (c.selective) expect(rejected).toBe(columnRejects);
    else expect(rejected).toBeLessThan(columnRejects);
  });

  test.each(QUERIES)("prefilter - answers identical with and without it: $name", async ({ q }) => {
    for (const c of CASES) {
      const wl = (c.wl ?? []).map((f) => create(FlowFilterSchema, f));
      const bl = (c.bl ?? []).map((f) => create(FlowFilterSchema, f));
      const without = await answer(q, wl, bl, false);
      expect({ filter: c.name, got: await answer(q, wl, bl, true) }).toEqual({
        filter: c.name,
        got: without,
      });
    }
  });
});
