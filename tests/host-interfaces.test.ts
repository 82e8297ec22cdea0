/**
 * Watching interfaces of the host's own network namespace (what
 * `scripts/up.sh --interfaces …` does on a real machine): a glob in the host
 * netns picks up a veth that appears after the collector started. The veth's
 * peer sits in a namespace this test creates, and all traffic goes there.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { runOk, waitFor } from "@periscope/devstack";
import type { Flow } from "@periscope/proto";
import { createHostVeth, type HostVeth } from "@periscope/testing";
import { type Stack, startStack, testPrefix } from "./harness.ts";

const prefix = testPrefix();
const hostIf = `${prefix}h0`;
const peerNs = `${prefix}peer`;
const HOST_IP = "10.201.0.1";
const PEER_IP = "10.201.0.2";
let stack: Stack;
let veth: HostVeth | undefined;

beforeAll(async () => {
  stack = await startStack({
    prefix,
    pods: [{ name: "idle" }],
    nodes: [{ name: "host-node", interfaces: `${prefix}h*` }],
  });
  // Appears only now: discovery has to find it.
  veth = await createHostVeth(hostIf, peerNs, { host: HOST_IP, peer: PEER_IP, prefixLen: 30 });
}, 60_000);

afterAll(async () => {
  await veth?.destroy(); // removes both veth ends
  await stack?.stop();
}, 60_000);

test("host interfaces - a glob in the host namespace attaches to a new device and its traffic becomes flows", async () => {
  let found: Flow | undefined;
  await waitFor(
    async () => {
      await runOk(["ping", "-c", "1", "-W", "1", PEER_IP]).catch(() => undefined);
      for await (const r of stack.client.getFlows({ number: 1000n })) {
        const f = r.responseTypes.case === "flow" ? r.responseTypes.value : undefined;
        if (f?.IP?.destination === PEER_IP && f.l4?.protocol.case === "ICMPv4") found = f;
      }
      return found !== undefined;
    },
    { timeoutMs: 20_000, intervalMs: 300, what: "echo request on the host-side veth" },
  );
  expect(found?.IP?.source).toBe(HOST_IP);
  expect(found?.nodeName).toBe("host-node");
  expect(found?.interface?.name).toBe(hostIf);
  expect(found?.Summary).toBe("ICMPv4 EchoRequest");
});
