import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  FlowSchema,
  FlowType,
  LostEventSchema,
  LostEventSource,
  Verdict,
} from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { buildWhitelist, FilterError } from "./filter.ts";
import { flowCells } from "./format.ts";
import { FlowStore, PAUSE_BUFFER, TABLE_ROWS } from "./store.ts";
import { queryString, readQuery } from "./url.ts";

const f = (i: number) =>
  create(FlowSchema, {
    uuid: `u${i}`,
    time: timestampFromMs(1_700_000_000_000 + i),
    verdict: Verdict.FORWARDED,
    source: { namespace: "demo", podName: "client" },
    destination: { namespace: "demo", podName: "server" },
    l4: { protocol: { case: "TCP", value: { sourcePort: 40000, destinationPort: 80 } } },
  });

describe("filter box", () => {
  test("filter - empty text is no filter", () => {
    expect(buildWhitelist("  ")).toEqual([]);
  });

  test("filter - pod and port match either side: a source and a destination filter", () => {
    const [l, r] = buildWhitelist("pod=demo/client port=80 verdict=dropped");
    expect(l?.sourcePod).toEqual(["demo/client"]);
    expect(l?.sourcePort).toEqual(["80"]);
    expect(r?.destinationPod).toEqual(["demo/client"]);
    expect(r?.destinationPort).toEqual(["80"]);
    expect(l?.verdict).toEqual([Verdict.DROPPED]);
    expect(r?.verdict).toEqual([Verdict.DROPPED]);
  });

  test("filter - namespace alone is a pod prefix; with pod= it names the pod's namespace", () => {
    const [l, r] = buildWhitelist("namespace=demo");
    expect(l?.sourcePod).toEqual(["demo/"]);
    expect(r?.destinationPod).toEqual(["demo/"]);
    const [p] = buildWhitelist("namespace=shop from-pod=web");
    expect(p?.sourcePod).toEqual(["shop/web"]);
    expect(buildWhitelist("namespace=shop from-pod=web")).toHaveLength(1);
  });

  test("filter - from-/to- pick one side; L7, label, protocol terms", () => {
    const fs = buildWhitelist(
      "to-port=53 protocol=UDP from-label=k8s:app=client type=l7 http-status=5+ http-method=get dns-query=example.com",
    );
    expect(fs).toHaveLength(1);
    const x = fs[0];
    expect(x?.destinationPort).toEqual(["53"]);
    expect(x?.protocol).toEqual(["udp"]);
    expect(x?.sourceLabel).toEqual(["k8s:app=client"]);
    expect(x?.eventType.map((e) => e.type)).toEqual([129]);
    expect(x?.httpStatusCode).toEqual(["5+"]);
    expect(x?.httpMethod).toEqual(["GET"]);
    expect(x?.dnsQuery).toEqual(["example.com"]);
  });

  test.each([
    ["verdict=maybe", 'verdict: "maybe"'],
    ["port=http", 'port: "http"'],
    ["port=70000", 'port: "70000"'],
    ["colour=red", '"colour" is not a filter'],
    ["client", '"client": expected key=value'],
    ["pod=", '"pod" needs a value'],
    ["type=l9", 'type: "l9"'],
  ])("filter - %p is refused naming what is wrong", (text, msg) => {
    expect(() => buildWhitelist(text)).toThrow(FilterError);
    expect(() => buildWhitelist(text)).toThrow(msg);
  });
});

describe("url query", () => {
  test("url - filter and time window survive a round trip; no since = live", () => {
    const q = {
      filter: "verdict=DROPPED pod=demo/client",
      since: 1_700_000_000_000,
      until: 1_700_000_060_000,
    };
    const s = queryString(q);
    expect(s).toContain("since=2023-11-14T22%3A13%3A20.000Z");
    expect(readQuery(s)).toEqual(q);
    expect(queryString({ filter: "" })).toBe("");
    expect(readQuery("?until=2024-01-01T00:00:00Z")).toEqual({ filter: "" });
    expect(readQuery("?since=junk")).toEqual({ filter: "" });
  });
});

describe("flow table and store", () => {
  test("cells - Hubble's columns", () => {
    const c = flowCells(
      create(FlowSchema, {
        ...f(0),
        verdict: Verdict.DROPPED,
        Type: FlowType.L3_L4,
        Summary: "TCP Flags: SYN",
      }),
    );
    expect(c).toEqual({
      time: "2023-11-14 22:13:20.000",
      source: "demo/client:40000",
      destination: "demo/server:80",
      type: "L3/L4 TCP",
      verdict: "DROPPED",
      summary: "TCP Flags: SYN",
    });
  });

  test("store - keeps the newest rows, newest first; pause holds flows and resume shows them", () => {
    const s = new FlowStore();
    for (let i = 0; i < TABLE_ROWS * 3; i++) s.onFlow(f(i));
    const rows = s.newest();
    expect(rows).toHaveLength(TABLE_ROWS);
    expect(rows[0]?.uuid).toBe(`u${TABLE_ROWS * 3 - 1}`);
    s.setPaused(true);
    s.onFlow(f(99_999));
    expect(s.newest(1)[0]?.uuid).toBe(`u${TABLE_ROWS * 3 - 1}`);
    expect(s.held).toHaveLength(1);
    s.setPaused(false);
    expect(s.newest(1)[0]?.uuid).toBe("u99999");
    expect(s.graph.edges.get("demo/client->demo/server:tcp/80")?.flows).toBe(TABLE_ROWS * 3 + 1);
  });

  test("store - flows beyond the pause buffer are counted as not shown", () => {
    expect(PAUSE_BUFFER).toBe(50_000);
    const s = new FlowStore({ pauseBuffer: 100 });
    s.setPaused(true);
    for (let i = 0; i < 107; i++) s.onFlow(f(i));
    expect(s.notShown).toBe(7);
    expect(s.held).toHaveLength(100);
    expect(s.received).toBe(107);
  });

  test("store - lost events are summed by where they were lost", () => {
    const s = new FlowStore();
    s.onLost(
      create(LostEventSchema, {
        source: LostEventSource.PERF_EVENT_RING_BUFFER,
        numEventsLost: 5n,
        cpu: 1,
      }),
    );
    s.onLost(
      create(LostEventSchema, {
        source: LostEventSource.PERF_EVENT_RING_BUFFER,
        numEventsLost: 2n,
        cpu: 1,
      }),
    );
    s.onLost(
      create(LostEventSchema, { source: LostEventSource.OBSERVER_EVENTS_QUEUE, numEventsLost: 1n }),
    );
    expect([...s.lost]).toEqual([
      ["PERF_EVENT_RING_BUFFER cpu 1", 7],
      ["OBSERVER_EVENTS_QUEUE", 1],
    ]);
    expect(s.lostTotal()).toBe(8);
  });

  test("store - a resumed stream's repeats of the newest flows are skipped", () => {
    const s = new FlowStore();
    s.onFlow(f(1));
    s.onFlow(f(2));
    s.onFlow(create(FlowSchema, { ...f(2), uuid: "other" }));
    expect(s.lastTimeMs).toBe(1_700_000_000_002);
    s.onFlow(f(2));
    s.onFlow(create(FlowSchema, { ...f(2), uuid: "other" }));
    s.onFlow(f(3));
    expect(s.received).toBe(4);
    expect(s.newest().map((x) => x.uuid)).toEqual(["u3", "other", "u2", "u1"]);
  });

  test("store - flows/s over the last 5 s", () => {
    const s = new FlowStore();
    for (let i = 0; i < 100; i++) s.onFlow(f(i), 10_000 + i * 10);
    expect(s.rate(11_000)).toBe(20);
    expect(s.rate(20_000)).toBe(0);
  });
});
