import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { processV1, telemetryV1 } from "@periscope/proto";
import {
  compileSubscription,
  type EventFacts,
  globRegExp,
  SubscriptionError,
  TelemetryHub,
} from "./telemetry.ts";

const { EventKind, LostReason, SubscriptionSchema, TelemetryEventSchema } = telemetryV1;

const exec = (binary: string, uid = 0, tgid = 1): EventFacts => ({
  kind: EventKind.PROCESS_EXEC,
  node: "n1",
  timeMs: Date.now(),
  process: create(processV1.ProcessSchema, { binary, uid, tgid }),
});
const event = (tgid: number) =>
  create(TelemetryEventSchema, {
    nodeName: "n1",
    event: { case: "exec", value: { process: { tgid } } },
  });

describe("telemetry subscriptions", () => {
  test("globs: * crosses /, ? is one character, the rest literal", () => {
    expect(globRegExp("*/nc*").test("/usr/bin/ncat")).toBe(true);
    expect(globRegExp("a?c").test("abc")).toBe(true);
    expect(globRegExp("a.c").test("abc")).toBe(false);
  });

  test("process filters: base name glob without /, uid, any entry matches", () => {
    const c = compileSubscription(
      create(SubscriptionSchema, {
        processes: [{ binary: "cu*", uid: 1000 }, { binary: "/bin/nc" }],
      }),
    );
    expect(c.match(exec("/usr/bin/curl", 1000))).toBe(true);
    expect(c.match(exec("/usr/bin/curl", 0))).toBe(false);
    expect(c.match(exec("/bin/nc", 0))).toBe(true);
    expect(c.match(exec("/usr/bin/nc", 0))).toBe(false);
  });

  test("errors name the field", () => {
    const field = (init: Parameters<typeof create<typeof SubscriptionSchema>>[1]): string => {
      try {
        compileSubscription(create(SubscriptionSchema, init));
      } catch (err) {
        if (err instanceof SubscriptionError) return err.field;
      }
      return "";
    };
    expect(field({ events: [EventKind.FLOW, 42 as telemetryV1.EventKind] })).toBe("events[1]");
    expect(field({ containers: [{}] })).toBe("containers[0]");
    expect(field({ containers: [{ id: "abc" }] })).toBe("containers[0].id");
    expect(field({ throttle: { events: 1, interval: { nanos: 10 } } })).toBe("throttle.interval");
    expect(field({ nodeNames: [""] })).toBe("node_names[0]");
    expect(field({ events: [EventKind.DROP] })).toBe("");
  });

  test("a slow subscriber loses only its own events, reported after the ones it got", async () => {
    const hub = new TelemetryHub("n1", 4);
    const all = compileSubscription(create(SubscriptionSchema, {}));
    const slow = hub.open(all);
    const fast = hub.open(all);
    const ctl = new AbortController();
    const got: number[] = [];
    for (let i = 1; i <= 10; i++) {
      hub.publish(exec("/bin/x", 0, i), () => event(i));
      // the fast one reads as events come
      const ev = await fast.next(ctl.signal);
      if (ev?.event.case === "exec") got.push(ev.event.value.process?.tgid ?? 0);
    }
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(fast.slowLost).toBe(0);
    expect(slow.slowLost).toBe(6);
    const seen: string[] = [];
    slow.end();
    for (let ev = await slow.next(ctl.signal); ev; ev = await slow.next(ctl.signal)) {
      seen.push(
        ev.event.case === "lost"
          ? `lost ${ev.event.value.count} ${ev.event.value.reason === LostReason.SLOW_SUBSCRIBER}`
          : `${ev.event.case === "exec" ? ev.event.value.process?.tgid : "?"}`,
      );
    }
    expect(seen).toEqual(["1", "2", "3", "4", "lost 6 true"]);
    hub.closeAll();
    expect(hub.size).toBe(0);
  });

  test("throttle counts what it holds back and reports it when the stream ends", async () => {
    const hub = new TelemetryHub("n1");
    const s = hub.open(
      compileSubscription(
        create(SubscriptionSchema, { throttle: { events: 3, interval: { seconds: 60n } } }),
      ),
    );
    for (let i = 1; i <= 10; i++) hub.publish(exec("/bin/x", 0, i), () => event(i));
    s.end();
    const ctl = new AbortController();
    const cases: string[] = [];
    for (let ev = await s.next(ctl.signal); ev; ev = await s.next(ctl.signal)) {
      cases.push(ev.event.case === "lost" ? `lost ${ev.event.value.count}` : "exec");
    }
    expect(cases).toEqual(["exec", "exec", "exec", "lost 7"]);
    hub.closeAll();
  });
});
