/**
 * Agent and debug events end to end with real parts: a collector attached to netns pods
 * publishes agent events into PERISCOPE_EVENTS, its trace program emits debug records once
 * debug is switched on over periscope.ctl.<node>.settings, the enricher turns them into
 * FlowBatch debug events, and the observer serves both.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { subjects } from "@periscope/bus";
import {
  AgentEventType,
  DebugEventType,
  type GetAgentEventsResponse,
  type GetDebugEventsResponse,
} from "@periscope/proto";
import { waitForValue } from "@periscope/testing";
import { type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "events-node";
let stack: Stack;

async function agentEvents(): Promise<GetAgentEventsResponse[]> {
  const out: GetAgentEventsResponse[] = [];
  for await (const r of stack.client.getAgentEvents({})) out.push(r);
  return out;
}
async function debugEvents(): Promise<GetDebugEventsResponse[]> {
  const out: GetDebugEventsResponse[] = [];
  for await (const r of stack.client.getDebugEvents({})) out.push(r);
  return out;
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "client" }, { name: "server" }],
    nodes: [{ name: NODE, pods: ["client", "server"] }],
  });
}, 90_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("agent and debug events", () => {
  test("events - GetAgentEvents has the collector's start and one attach per pod", async () => {
    const evs = await waitForValue(
      async () => {
        const all = await agentEvents();
        const attaches = all.filter((e) => e.agentEvent?.type === AgentEventType.ENDPOINT_CREATED);
        return attaches.length >= 2 ? all : undefined;
      },
      { timeoutMs: 15_000, what: "two ENDPOINT_CREATED events" },
    );
    expect(evs[0]?.agentEvent?.type).toBe(AgentEventType.AGENT_STARTED);
    expect(evs.every((e) => e.nodeName === NODE)).toBe(true);
    const labels = evs
      .filter((e) => e.agentEvent?.type === AgentEventType.ENDPOINT_CREATED)
      .map((e) =>
        e.agentEvent?.notification.case === "endpointUpdate"
          ? e.agentEvent.notification.value.labels.find((l) => l.startsWith("netns="))
          : undefined,
      );
    expect(labels.sort()).toEqual(
      ["client", "server"].map((p) => `netns=${stack.topology.pod(p).netns}`).sort(),
    );
  }, 30_000);

  test("events - debug records of a ping reach GetDebugEvents with hash, cpu and device", async () => {
    // The collector subscribes to its control subject after its first discovery pass.
    const reply = await waitForValue(
      () =>
        stack.bus.nc
          .request(
            subjects.ctl(NODE, "settings"),
            new TextEncoder().encode(JSON.stringify({ debug: true })),
            { timeout: 2000 },
          )
          .catch(() => undefined),
      { timeoutMs: 15_000, what: "the collector answering on its settings subject" },
    );
    expect(JSON.parse(new TextDecoder().decode(reply.data))).toMatchObject({ debug: true });
    const t = stack.topology;
    const ping = await t.exec("client", [
      "ping",
      "-c",
      "2",
      "-i",
      "0.2",
      "-W",
      "2",
      t.pod("server").ipv4,
    ]);
    expect(ping.code).toBe(0);
    const evs = await waitForValue(
      async () => {
        const all = await debugEvents();
        return all.some((e) => e.debugEvent?.type === DebugEventType.DBG_CT_CREATED4)
          ? all
          : undefined;
      },
      { timeoutMs: 15_000, what: "a DBG_CT_CREATED4 debug event" },
    );
    const created = evs.find((e) => e.debugEvent?.type === DebugEventType.DBG_CT_CREATED4);
    expect(created?.nodeName).toBe(NODE);
    expect(created?.debugEvent?.hash).toBeGreaterThan(0);
    expect(created?.debugEvent?.cpu).toBeGreaterThanOrEqual(0);
    expect(created?.debugEvent?.message).toMatch(/^DBG_CT_CREATED4 on eth0 \(\d+\): arg1=/);
    // The same records were not lost on the way: no LostEvent in the flow stream.
    let lost = 0;
    for await (const r of stack.client.getFlows({ number: 10_000n })) {
      if (r.responseTypes.case === "lostEvents") lost++;
    }
    expect(lost).toBe(0);
  }, 30_000);
});
