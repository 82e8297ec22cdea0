import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { TraceProgram } from "@periscope/bpf";
import { subjects } from "@periscope/bus";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import {
  handleSettingsRequest,
  parseSettingsRequest,
  type SettingsMessage,
  startSettingsControl,
} from "./control.ts";

const isRoot = process.getuid?.() === 0;
const body = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** An Ethernet + IPv4 + UDP frame 10.8.0.1:1111 -> 10.8.0.2:53 of 80 bytes. */
function udpFrame(): Uint8Array {
  const f = new Uint8Array(80);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
  f.set([0x45, 0, 0, 66, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 8, 0, 1, 10, 8, 0, 2], 14);
  f.set([0x04, 0x57, 0, 53, 0, 46], 34);
  return f;
}

describe("settings control", () => {
  test.each([
    ["not JSON", "{", /^body: is not JSON/],
    ["a list", "[]", /^body: must be a JSON object/],
    ["unknown field", '{"aggregate":"low"}', /^aggregate: unknown field/],
    ["bad level", '{"aggregation":"loud"}', /^aggregation: must be one of none, low/],
    ["bad interval", '{"aggregationIntervalMs":-5}', /^aggregationIntervalMs: must be an integer/],
    ["bad rule", '{"captureRules":["udp/53=x"]}', /^captureRules\[0\]: "udp\/53=x" is not/],
    [
      "bad rule len",
      '{"captureRules":[{"proto":6,"len":"9"}]}',
      /^captureRules\[0\]\.len: must be/,
    ],
    ["bad debug", '{"debug":1}', /^debug: must be true or false/],
  ])("control - %s is refused naming the field", (_n, raw, want) => {
    expect(() => parseSettingsRequest(new TextEncoder().encode(raw))).toThrow(want);
  });

  test("control - a good request becomes an update; rules as strings or objects", () => {
    expect(
      parseSettingsRequest(
        body({
          aggregation: "maximum",
          aggregationIntervalMs: 1000,
          captureRules: ["udp/53=512", { proto: 6, len: 64 }],
          debug: true,
        }),
      ),
    ).toEqual({
      aggregation: "maximum",
      reportIntervalMs: 1000,
      captureRules: [
        { proto: 17, port: 53, len: 512 },
        { proto: 6, port: 0, len: 64 },
      ],
      debug: true,
    });
    expect(parseSettingsRequest(new Uint8Array(0))).toEqual({});
  });

  describe.skipIf(!isRoot)("over NATS, on a loaded program", () => {
    let nats: LocalNats;
    let nc: NatsConnection;
    let prog: TraceProgram;
    let control: { stop(): void };
    const bad: string[] = [];

    beforeAll(async () => {
      nats = await startLocalNats();
      nc = await connect({ servers: nats.url });
      prog = TraceProgram.load({ ringBufferBytes: 1 << 16 });
      prog.setSettings({ aggregation: "medium", reportIntervalMs: 60_000 });
      control = startSettingsControl({
        nc,
        node: "ctl-node",
        target: prog,
        log: createLogger("control-test", "error"),
        onBad: (field) => bad.push(field),
      });
    });
    afterAll(async () => {
      control?.stop();
      prog?.close();
      await nc?.close();
      await nats?.stop();
    });

    const ask = async (req: unknown) => {
      const msg = await nc.request(subjects.ctl("ctl-node", "settings"), body(req), {
        timeout: 5000,
      });
      return JSON.parse(new TextDecoder().decode(msg.data)) as SettingsMessage | { error: string };
    };
    const records = (n: number) => {
      for (let i = 0; i < n; i++) prog.testRun(udpFrame(), 1, "ingress");
      return prog.drain(() => {});
    };

    test("control - requests change what the kernel reports and reply with the settings", async () => {
      expect(await ask({})).toEqual({
        aggregation: "medium",
        aggregationIntervalMs: 60_000,
        captureRules: [],
        debug: false,
      });
      expect(records(5)).toBe(1); // medium: the first packet of the connection only
      expect(await ask({ aggregation: "none", captureRules: ["udp/53=64"] })).toEqual({
        aggregation: "none",
        aggregationIntervalMs: 60_000,
        captureRules: ["udp/53=64"],
        debug: false,
      });
      let sizes: number[] = [];
      prog.testRun(udpFrame(), 3, "ingress");
      prog.drain((b) => sizes.push(b.length));
      expect(sizes).toEqual([48 + 64, 48 + 64, 48 + 64]);
      await ask({ captureRules: [] });
      sizes = [];
      prog.testRun(udpFrame(), 1, "ingress");
      prog.drain((b) => sizes.push(b.length));
      expect(sizes).toEqual([48 + 80]);
    });

    test("control - a bad request is answered with the error, counted, and changes nothing", async () => {
      const before = await ask({});
      const reply = await ask({ aggregation: "none", debug: "yes" });
      expect(reply).toEqual({ error: "debug: must be true or false" });
      const tooMany = await ask({ captureRules: Array(9).fill("tcp=1") });
      expect("error" in tooMany && tooMany.error).toMatch(/^captureRules: at most 8/);
      expect(bad).toEqual(["debug", "captureRules"]);
      expect(await ask({})).toEqual(before);
      expect(handleSettingsRequest(prog, body({ aggregation: "x" }))).toEqual({
        error: "aggregation: must be one of none, low, medium, maximum",
      });
    });
  });
});
