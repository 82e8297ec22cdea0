import { expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { AgentEventType, GetAgentEventsResponseSchema } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { AgentEvents } from "./agent-events.ts";

const dev = {
  name: "pod-a/eth0",
  target: { ifname: "eth0", netns: "pod-a" },
  ifindex: 3,
  netnsCookie: 4097n,
};

test("agent events - published in order with node, time and per-run message ids", async () => {
  const sent: { subject: string; id: string; type: AgentEventType; case?: string }[] = [];
  const ev = new AgentEvents({
    node: "node a",
    bootId: "boot-1",
    log: createLogger("collector", "silent"),
    now: () => 1_700_000_000_000,
    publish: async (subject, payload, id) => {
      const msg = fromBinary(GetAgentEventsResponseSchema, payload);
      expect(msg.nodeName).toBe("node a");
      expect(msg.time?.seconds).toBe(1_700_000_000n);
      sent.push({
        subject,
        id,
        type: msg.agentEvent?.type ?? AgentEventType.AGENT_EVENT_UNKNOWN,
        ...(msg.agentEvent?.notification.case ? { case: msg.agentEvent.notification.case } : {}),
      });
    },
  });
  ev.started();
  ev.attached(dev);
  ev.policyChanged({ revision: 2n, ruleCount: 3, labels: ["policy=deny-db"] });
  ev.policyChanged({ revision: 3n, ruleCount: 0, deleted: true });
  ev.detached(dev, "vanished");
  ev.stopped({ eventsRead: 5 });
  await ev.flush();
  expect(sent.map((s) => [s.type, s.case])).toEqual([
    [AgentEventType.AGENT_STARTED, "agentStart"],
    [AgentEventType.ENDPOINT_CREATED, "endpointUpdate"],
    [AgentEventType.POLICY_UPDATED, "policyUpdate"],
    [AgentEventType.POLICY_DELETED, "policyUpdate"],
    [AgentEventType.ENDPOINT_DELETED, "endpointUpdate"],
    [AgentEventType.AGENT_EVENT_UNKNOWN, "unknown"],
  ]);
  expect(sent.every((s) => s.subject === "periscope.agent.node_a")).toBe(true);
  expect(sent.map((s) => s.id)).toEqual([1, 2, 3, 4, 5, 6].map((n) => `boot-1.agent.${n}`));
});

test("agent events - an event the broker never stores is retried, then counted lost", async () => {
  let calls = 0;
  const counted: string[] = [];
  const ev = new AgentEvents({
    node: "n",
    bootId: "b",
    log: createLogger("collector", "silent"),
    attempts: 2,
    retryDelayMs: 1,
    count: (r) => counted.push(r),
    publish: async () => {
      calls++;
      if (calls <= 2) throw new Error("no responders");
    },
  });
  ev.started();
  ev.attached(dev);
  await ev.flush();
  expect(calls).toBe(3);
  expect(counted).toEqual(["lost", "published"]);
});
