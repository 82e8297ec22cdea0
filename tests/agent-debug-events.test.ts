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
import { waitFor, waitForValue } from "@periscope/testing";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

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
  test("events - periscope monitor --from <ns>/<pod> resolves the pod through the endpoints registry", async () => {
    const t = stack.topology;
    const client = t.pod("client");
    const proc = Bun.spawn(
      [
        "bun",
        "run",
        "cli/src/main.ts",
        "monitor",
        "-j",
        "--type",
        "trace",
        "--from",
        `${client.namespace}/${client.name}`,
        "--nats",
        stack.natsUrl,
      ],
      { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
    );
    const lines: string[] = [];
    const errLines: string[] = [];
    const collect = async (s: ReadableStream<Uint8Array>, into: string[]) => {
      const dec = new TextDecoder();
      let rest = "";
      for await (const chunk of s) {
        const parts = (rest + dec.decode(chunk, { stream: true })).split("\n");
        rest = parts.pop() ?? "";
        into.push(...parts);
      }
    };
    const done = Promise.all([collect(proc.stdout, lines), collect(proc.stderr, errLines)]);
    try {
      await waitFor(() => errLines.some((l) => l.startsWith("Listening")), {
        what: "monitor subscribed",
      });
      const ping = await t.exec("server", ["ping", "-c", "1", "-W", "2", client.ipv4]);
      expect(ping.code).toBe(0);
      const ping2 = await t.exec("client", ["ping", "-c", "1", "-W", "2", t.pod("server").ipv4]);
      expect(ping2.code).toBe(0);
      await waitFor(() => lines.length >= 2, {
        timeoutMs: 15_000,
        what: "traces from the client pod",
      });
    } finally {
      proc.kill("SIGINT");
      expect(await proc.exited).toBe(0);
      await done;
    }
    const evs = lines.map((l) => JSON.parse(l) as { source?: string; type: string });
    expect(evs.length).toBeGreaterThanOrEqual(2);
    expect(evs.every((e) => e.type === "trace" && e.source === client.ipv4)).toBe(true);
  }, 30_000);
});
