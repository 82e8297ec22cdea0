import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import {
  type PresenceBeat,
  PresenceTable,
  parseBeat,
  presenceSubjects,
  reportExited,
  startHeartbeat,
  watchPresence,
} from "./index.ts";

const T0 = 1_700_000_000_000;

function beat(over: Partial<PresenceBeat> = {}): PresenceBeat {
  return {
    service: "enricher",
    node: "n1",
    instance: "h-100",
    host: "h",
    pid: 100,
    state: "up",
    startedMs: T0,
    sentMs: T0,
    intervalMs: 1000,
    ...over,
  };
}

const REQUIRED = { enricher: "flows are not being decoded" };

describe("presence table", () => {
  test("presence - a beating instance is live and the report is ok", () => {
    const t = new PresenceTable({ required: REQUIRED }, T0);
    t.observe(beat(), T0);
    const r = t.report(T0 + 2000);
    expect(r.state).toBe("ok");
    expect(r.services).toEqual([
      { service: "enricher", state: "ok", live: 1, lost: [], nodesWithout: [] },
    ]);
  });

  test("presence - silence beyond 3 intervals makes the only instance missing", () => {
    const t = new PresenceTable({}, T0);
    t.observe(beat(), T0);
    expect(t.report(T0 + 3000).state).toBe("ok");
    const r = t.report(T0 + 3100);
    expect(r.state).toBe("degraded");
    expect(r.services[0]?.state).toBe("missing");
    expect(r.services[0]?.nodesWithout).toEqual(["n1"]);
    expect(r.problems).toEqual(["enricher: no live instance: n1/h-100 silent for 3s"]);
  });

  test("presence - an exit report is immediate and names the impact", () => {
    const t = new PresenceTable({ required: REQUIRED }, T0);
    t.observe(beat(), T0);
    t.observe(beat({ state: "exited", startedMs: 0, sentMs: T0 + 100 }), T0 + 100);
    expect(t.report(T0 + 200).problems).toEqual([
      "enricher: no live instance (flows are not being decoded): n1/h-100 exited 100ms ago",
    ]);
  });

  test("presence - a newer instance on the node replaces the lost one", () => {
    const t = new PresenceTable({}, T0);
    t.observe(beat({ sentMs: T0 + 1000 }), T0 + 1000);
    t.observe(beat({ state: "exited" }), T0 + 1200);
    t.observe(
      beat({ instance: "h-200", pid: 200, startedMs: T0 + 2000, sentMs: T0 + 2100 }),
      T0 + 2100,
    );
    const r = t.report(T0 + 2200);
    expect(r.state).toBe("ok");
    expect(r.services[0]).toMatchObject({ state: "ok", live: 1, lost: [] });
  });

  test("presence - an older surviving replica does not hide a lost one", () => {
    const t = new PresenceTable({}, T0);
    t.observe(beat({ instance: "h-1", pid: 1, startedMs: T0 }), T0);
    t.observe(beat({ instance: "h-2", pid: 2, startedMs: T0 + 5, sentMs: T0 + 500 }), T0 + 500);
    t.observe(beat({ instance: "h-2", pid: 2, state: "exited" }), T0 + 600);
    t.observe(beat({ instance: "h-1", pid: 1, startedMs: T0, sentMs: T0 + 1000 }), T0 + 1000);
    const r = t.report(T0 + 1100);
    expect(r.services[0]).toMatchObject({ state: "degraded", live: 1, nodesWithout: [] });
    expect(r.problems).toEqual(["enricher: 1 of 2 instances lost: n1/h-2 exited 500ms ago"]);
  });

  test("presence - a graceful stop removes the instance at once", () => {
    const t = new PresenceTable({}, T0);
    t.observe(beat(), T0);
    t.observe(beat({ state: "stopping" }), T0 + 10);
    expect(t.report(T0 + 20)).toEqual({ state: "ok", services: [], problems: [] });
  });

  test("presence - a required service never seen is missing only after the grace period", () => {
    const t = new PresenceTable({ required: REQUIRED, graceMs: 2500 }, T0);
    expect(t.report(T0 + 2000).state).toBe("ok");
    expect(t.report(T0 + 2500).problems).toEqual([
      "enricher: no live instance (flows are not being decoded)",
    ]);
  });

  test("presence - lost instances are forgotten after forgetAfterMs", () => {
    const t = new PresenceTable({ forgetAfterMs: 60_000 }, T0);
    t.observe(beat({ state: "exited" }), T0);
    expect(t.report(T0 + 59_000).state).toBe("degraded");
    expect(t.report(T0 + 61_000).state).toBe("ok");
  });

  test.each([
    ["not json", "presence beat is not JSON"],
    ['{"service":"x"}', "node must be a non-empty string"],
    [JSON.stringify({ ...beat(), pid: -1 }), "pid must be a non-negative number"],
    [JSON.stringify({ ...beat(), state: "zombie" }), "state must be one of up, stopping, exited"],
  ])("presence - parseBeat rejects %p", (text, msg) => {
    expect(() => parseBeat(new TextEncoder().encode(text))).toThrow(msg);
  });
});

describe("presence over NATS", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startLocalNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const until = async (cond: () => boolean): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error("condition did not hold within 5 s");
      await Bun.sleep(20);
    }
  };

  test("presence - heartbeats, an exit report and a malformed message", async () => {
    const watch = watchPresence(nc, { required: REQUIRED, graceMs: 0 });
    try {
      const hb = startHeartbeat(nc, { service: "enricher", node: "n9", intervalMs: 100 });
      await until(() => watch.report().state === "ok" && watch.report().services.length === 1);
      reportExited(nc, { service: "enricher", node: "n9", pid: process.pid });
      await until(() => watch.report().services[0]?.state === "missing");
      expect(watch.report().services[0]?.lost[0]?.state).toBe("exited");
      await hb.stop();
      await until(() => watch.report().services.every((s) => s.lost.length === 0));
      nc.publish(presenceSubjects.one("x", "y", "z"), new TextEncoder().encode("{"));
      await until(() => watch.malformed() === 1);
    } finally {
      await watch.stop();
    }
  });
});
