import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import type { RunningObserver } from "./server.ts";
import {
  type GrpcGetFlows,
  type GrpcMsg as Msg,
  readGrpcStream as readAll,
  type ServedFlows,
  serveFlows,
} from "./testing/flows-server.ts";
import { testFlowResponse } from "./testing.ts";

let served: ServedFlows;
let observer: RunningObserver;
let client: GrpcGetFlows;

beforeAll(async () => {
  served = await serveFlows(
    "observer-mask-test",
    "node-m",
    ["10.5.0.1", "10.5.0.2"].map((src, i) =>
      testFlowResponse({ timeMs: Date.now() + i, src, node: "node-m", srcPod: `pod-${i}` }),
    ),
  );
  ({ observer, client } = served);
});

afterAll(async () => {
  await served?.stop();
});

describe("GetFlows field_mask over a real server", () => {
  test("field-mask - a grpc-js client gets only the masked fields", async () => {
    const msgs = await readAll(
      client.GetFlows({ field_mask: { paths: ["IP.source", "source.pod_name", "time"] } }),
    );
    expect(msgs).toHaveLength(2);
    const flows = msgs.map((m) => m.flow as Msg);
    expect(flows.map((f) => (f.IP as Msg).source)).toEqual(["10.5.0.1", "10.5.0.2"]);
    expect(flows.map((f) => (f.source as Msg).pod_name)).toEqual(["pod-0", "pod-1"]);
    for (const f of flows) {
      // Fields left out are absent on the wire (no defaults requested from the loader).
      expect((f.IP as Msg).destination).toBeUndefined();
      expect(f.time).toBeDefined();
      expect(f.destination).toBeUndefined();
      expect(f.node_name).toBeUndefined();
      expect(f.verdict).toBeUndefined();
    }
    expect(msgs[0]?.node_name).toBe("node-m");
    // Without a mask the same flows come back whole.
    const whole = (await readAll(client.GetFlows({}))).map((m) => m.flow as Msg);
    expect(whole.map((f) => f.node_name)).toEqual(["node-m", "node-m"]);
    expect(whole.map((f) => (f.IP as Msg).destination)).toEqual(["10.0.0.2", "10.0.0.2"]);
  });

  test("field-mask - an unknown path is INVALID_ARGUMENT naming it", async () => {
    const err = await readAll(
      client.GetFlows({ field_mask: { paths: ["time", "source.no_such_field"] } }),
    ).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toContain("source.no_such_field");
  });
});

describe("GetFlows over Connect JSON", () => {
  /** Connect enveloped request body: flags 0, big-endian length, JSON. */
  const envelope = (json: string): Uint8Array => {
    const msg = new TextEncoder().encode(json);
    const out = new Uint8Array(5 + msg.length);
    new DataView(out.buffer).setUint32(1, msg.length);
    out.set(msg, 5);
    return out;
  };
  /** The JSON messages of a Connect streaming response body (end-of-stream frame left out). */
  const messages = (body: Uint8Array): Msg[] => {
    const out: Msg[] = [];
    for (let at = 0; at + 5 <= body.length; ) {
      const flags = body[at] as number;
      const len = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
      const text = new TextDecoder().decode(body.subarray(at + 5, at + 5 + len));
      if ((flags & 2) === 0) out.push(JSON.parse(text) as Msg);
      at += 5 + len;
    }
    return out;
  };

  test("field-mask - a Connect JSON client (curl, browsers) gets every field of the stored flows", async () => {
    const post = async (json: string): Promise<Msg[]> => {
      const r = await fetch(`${observer.url}/observer.Observer/GetFlows`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: envelope(json),
      });
      expect(r.status).toBe(200);
      return messages(new Uint8Array(await r.arrayBuffer()));
    };
    const all = await post("{}");
    expect(all).toHaveLength(2);
    const flows = all.map((m) => m.flow as Msg);
    expect(flows.map((f) => (f.IP as Msg).source)).toEqual(["10.5.0.1", "10.5.0.2"]);
    expect(flows.map((f) => (f.source as Msg).podName)).toEqual(["pod-0", "pod-1"]);
    expect(all[0]?.nodeName).toBe("node-m");
    // With a mask the masked message is what goes out, in JSON too.
    const masked = await post('{"fieldMask":"source.podName,time"}');
    expect(masked.map((m) => ((m.flow as Msg).source as Msg).podName)).toEqual(["pod-0", "pod-1"]);
    expect((masked[0]?.flow as Msg).IP).toBeUndefined();
  });
});
