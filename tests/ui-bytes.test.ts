/**
 * Bytes per edge in the browser (Debian's chromium, playwright-core): a real nats-server,
 * a real observer serving ui/dist, flows and flow records published on the bus as the
 * enricher and a collector publish them. The edge with records shows their bytes and
 * packets both ways; the edge without records shows "unknown".
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import {
  FlowBatchSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  netflowV1,
  Verdict,
} from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "../services/observer/src/config.ts";
import { type RunningObserver, startObserver } from "../services/observer/src/server.ts";
import { chromiumUnavailable, type OpenUiSession, openUi } from "./ui/browser.ts";

const IN_MINIMAL_ROOT = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
const BUILT = existsSync(resolve(import.meta.dir, "../ui/dist/index.html"));
const NO_CHROMIUM = chromiumUnavailable(IN_MINIMAL_ROOT);
const SKIP = NO_CHROMIUM !== undefined || !BUILT;
if (SKIP) console.log(`SKIP tests/ui-bytes.test.ts: ${NO_CHROMIUM ?? "ui/dist not built"}`);

const CLIENT = "10.77.0.2";
const SERVER = "10.77.0.3";
const DB = "10.77.0.4";
const NODE = "ui-bytes-node";

let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
let ui: OpenUiSession | undefined;

/** A TCP flow between demo pods as the enricher publishes it. */
function flow(
  src: [string, string],
  dst: [string, string],
  sport: number,
  dport: number,
  reply: boolean,
) {
  return create(FlowSchema, {
    time: timestampFromMs(Date.now()),
    nodeName: NODE,
    verdict: Verdict.FORWARDED,
    IP: { source: src[1], destination: dst[1], ipVersion: 1 },
    source: { namespace: "demo", podName: src[0] },
    destination: { namespace: "demo", podName: dst[0] },
    l4: { protocol: { case: "TCP", value: { sourcePort: sport, destinationPort: dport } } },
    isReply: reply,
  });
}

function v4(text: string): netflowV1.Ip {
  const n = text.split(".").reduce((a, b) => a * 256 + Number(b), 0);
  return create(netflowV1.IpSchema, { ipFamily: { case: "ipv4", value: n } });
}

function record(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  bytes: bigint,
  packets: bigint,
) {
  const now = Date.now();
  return create(netflowV1.NetflowRecordSchema, {
    ethProtocol: 0x0800,
    timeFlowStart: timestampFromMs(now - 1_000),
    timeFlowEnd: timestampFromMs(now - 100),
    network: { srcAddr: v4(src), dstAddr: v4(dst) },
    transport: { srcPort: sport, dstPort: dport, protocol: 6 },
    bytes,
    packets,
    node: NODE,
  });
}

beforeAll(async () => {
  if (SKIP) return;
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  observer = await startObserver(
    parseConfig(["--listen-address", "127.0.0.1:0", "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: "ui-bytes",
    }),
    { log: createLogger("observer", "silent"), noOps: true },
  );
}, 30_000);

afterAll(async () => {
  await ui?.close();
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
}, 30_000);

describe.skipIf(SKIP)(
  "web UI bytes per edge (headless Chromium, real observer and nats-server)",
  () => {
    test("ui bytes - an edge shows its records' bytes and packets both ways; one without records shows unknown", async () => {
      const client: [string, string] = ["client", CLIENT];
      const server: [string, string] = ["server", SERVER];
      const db: [string, string] = ["db", DB];
      const responses = [
        flow(client, server, 40001, 8080, false),
        flow(server, client, 8080, 40001, true),
        flow(client, db, 40002, 5432, false),
      ].map((f) =>
        create(GetFlowsResponseSchema, {
          nodeName: NODE,
          time: f.time,
          responseTypes: { case: "flow", value: f },
        }),
      );
      const records = create(netflowV1.NetflowRecordsSchema, {
        entries: [
          record(CLIENT, SERVER, 40001, 8080, 12_345n, 10n),
          record(SERVER, CLIENT, 8080, 40001, 67_890n, 9n),
        ],
      });
      nc.publish(subjects.netflows(NODE), toBinary(netflowV1.NetflowRecordsSchema, records));
      nc.publish(
        subjects.flows(NODE),
        toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses })),
      );
      await nc.flush();

      ui = await openUi();
      const { page } = ui;
      const failed: string[] = [];
      page.on("response", (r) => {
        if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
      });
      await page.goto(`${observer.url}/`);
      const edge = (id: string) =>
        page.locator(`[data-testid=map-edge][data-edge-id="${id}"] [data-testid=edge-bytes]`);
      const withBytes = edge("demo/client->demo/server:tcp/8080");
      await waitFor(
        async () => (await withBytes.getAttribute("data-bytes-forward").catch(() => null)) !== null,
        {
          what: "bytes on the client->server edge",
          timeoutMs: 20_000,
        },
      );
      expect(await withBytes.getAttribute("data-bytes-forward")).toBe("12345");
      expect(await withBytes.getAttribute("data-packets-forward")).toBe("10");
      expect(await withBytes.getAttribute("data-bytes-reverse")).toBe("67890");
      expect(await withBytes.getAttribute("data-packets-reverse")).toBe("9");
      expect(await withBytes.textContent()).toContain("12.1 KiB (12,345 B), 10 packets");
      const unknown = edge("demo/client->demo/db:tcp/5432");
      expect(await unknown.textContent()).toBe("bytes: → unknown · ← unknown");
      expect(await unknown.getAttribute("data-bytes-forward")).toBeNull();
      await ui.screenshot("edge-bytes");
      // API calls all answered (the browser's own favicon request may 404)
      expect(failed.filter((f) => !f.endsWith("/favicon.ico"))).toEqual([]);
      expect(ui.errors.filter((e) => e.startsWith("pageerror"))).toEqual([]);
    }, 90_000);
  },
);
