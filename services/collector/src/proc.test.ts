import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { DEFAULT_PROC_OBJECT, NO_NETNS_COOKIE, netnsCookie } from "@periscope/bpf";
import { sanitizeToken } from "@periscope/bus";
import type { RawFrame } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  createVethPair,
  type LocalNats,
  loadedProgIds,
  startLocalNats,
  type VethPair,
  waitForValue,
} from "@periscope/testing";
import {
  decodeProcRecord,
  decodeRawFrame,
  decodeSockOwnerRecord,
  decodeTraceRecord,
  PROC_EVENT,
  RECORD_TYPE_SOCK_OWNER,
  RECORD_TYPE_TRACE,
  rawFrameRecords,
  SOCK_SOURCE,
} from "@periscope/wire";
import { startCollector } from "./collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "./config.ts";
import { netnsOfDevices, parseProcessEvents } from "./proc.ts";

const canRun =
  process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT) && existsSync(DEFAULT_PROC_OBJECT);

/** Every frame published on `subject` while subscribed, decoded. */
function frameLog(nc: NatsConnection, subject: string): { frames: RawFrame[]; close(): void } {
  const frames: RawFrame[] = [];
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) frames.push(decodeRawFrame(msg.data));
    },
  });
  return { frames, close: () => sub.unsubscribe() };
}

test("process events config - on/off and max args, bad values named", () => {
  const cfg = (argv: string[], env: Record<string, string> = {}) =>
    parseConfig(argv, env).processEvents;
  expect(cfg([])).toEqual({ enabled: true, maxArgs: 1024 });
  expect(cfg(["--process-events=off"]).enabled).toBe(false);
  expect(cfg([], { PERISCOPE_PROCESS_EVENTS: "off" }).enabled).toBe(false);
  expect(cfg(["--process-events=on", "--max-args=64"])).toEqual({ enabled: true, maxArgs: 64 });
  expect(cfg([], { PERISCOPE_PROCESS_EVENTS: "on" }).enabled).toBe(true);
  expect(() => cfg(["--process-events=yes"])).toThrow(/--process-events.*on or off.*"yes"/);
  expect(() => cfg(["--max-args=5000"])).toThrow(/--max-args/);
  expect(parseProcessEvents).toBeDefined();
});

test("process events - no attached device: a filter no namespace matches, not every namespace", () => {
  expect([...netnsOfDevices([])]).toEqual([NO_NETNS_COOKIE]);
  expect([...netnsOfDevices([{ netnsCookie: 0n }])]).toEqual([NO_NETNS_COOKIE]);
  expect([
    ...netnsOfDevices([{ netnsCookie: 5n }, { netnsCookie: 5n }, { netnsCookie: 9n }]),
  ]).toEqual([5n, 9n]);
});

/**
 * The kernel reports pids of the initial PID namespace; the minimal-root check runs the
 * suite in a PID namespace of its own, where the test's pids differ, so these run outside it.
 */
const OWN_PID_NS = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (OWN_PID_NS)
  console.log(
    "SKIP process records: PERISCOPE_TEST_IN_MINIMAL_ROOT=1 runs in its own PID namespace",
  );

describe.skipIf(!canRun || OWN_PID_NS)(
  "collector process events (root, real kernel and nats-server)",
  () => {
    let nats: LocalNats;
    let nc: NatsConnection;
    let pair: VethPair;

    beforeAll(async () => {
      nats = await startLocalNats({});
      nc = await connect({ servers: nats.url });
      pair = await createVethPair();
    });
    afterAll(async () => {
      await pair?.destroy();
      await nc?.close();
      await nats?.stop();
    });

    test("exec records on periscope.proc.<node>; TCP owners in their flow's raw partition", async () => {
      const node = `psct-proc-${pair.nsA}`;
      const proc = frameLog(nc, `periscope.proc.${sanitizeToken(node)}`);
      const raw = frameLog(nc, `periscope.raw.${sanitizeToken(node)}.>`);
      const before = await loadedProgIds();
      const config = parseConfig(
        [
          `--nats-url=${nats.url}`,
          `--node-name=${node}`,
          `--interfaces=${pair.nsA}/${pair.ifA}`,
          "--ops-addr=127.0.0.1:0",
          "--aggregation=none",
          "--partitions=4",
          "--frame-max-delay-ms=20",
          "--log-level=warn",
          "--drops=off",
          "--process-events=on",
          "--max-args=256",
        ],
        {},
      );
      const collector = await startCollector(config, { log: createLogger("collector", "warn") });
      try {
        const port = 20000 + Math.floor(Math.random() * 10000);
        const server = Bun.spawn(
          ["ip", "netns", "exec", pair.nsB, "nc", "-l", "-s", pair.ipB, "-p", String(port)],
          { stdout: "pipe" },
        );
        let clientPid = -1;
        await waitForValue(
          async () => {
            const c = Bun.spawn(
              ["ip", "netns", "exec", pair.nsA, "nc", "-N", "-w", "2", pair.ipB, String(port)],
              { stdin: "pipe" },
            );
            c.stdin.write("hi\n");
            c.stdin.end();
            await c.exited;
            clientPid = c.pid;
            return c.exitCode === 0 ? true : undefined;
          },
          { what: "TCP connection accepted" },
        );
        server.kill();
        await server.exited;

        const exec = await waitForValue(
          () =>
            proc.frames
              .flatMap((f) => f.records.map(decodeProcRecord))
              .find((r) => r.tgid === clientPid && r.event === PROC_EVENT.EXEC && r.comm === "nc"),
          { what: "exec record of the client" },
        );
        expect(exec.binary.endsWith("nc")).toBe(true);
        expect(exec.args).toEqual(["nc", "-N", "-w", "2", pair.ipB, String(port)]);
        const owner = await waitForValue(
          () => {
            for (const f of raw.frames) {
              for (const r of rawFrameRecords(f).records) {
                if (r[0] !== RECORD_TYPE_SOCK_OWNER) continue;
                const o = decodeSockOwnerRecord(r);
                if (o.tgid === clientPid) return { o, partition: f.partition };
              }
            }
            return undefined;
          },
          { what: "socket-owner record of the client in a raw frame" },
        );
        expect(owner.o.source).toBe(SOCK_SOURCE.TCP_CONNECT);
        expect(owner.partition).toBe(owner.o.flowHash % 4);
        // Only nsA has an attached device: the server's accepted socket in nsB is skipped
        // by the kernel and counted, never published.
        expect(owner.o.netnsCookie).toBe(netnsCookie(pair.nsA));
        const allOwners = raw.frames
          .flatMap((f) => rawFrameRecords(f).records)
          .filter((r) => r[0] === RECORD_TYPE_SOCK_OWNER)
          .map(decodeSockOwnerRecord);
        expect(allOwners.some((o) => o.tgid === server.pid)).toBe(false);
        expect(allOwners.every((o) => o.netnsCookie === netnsCookie(pair.nsA))).toBe(true);
        const filtered = await waitForValue(
          async () => {
            const text = await (
              await fetch(`http://127.0.0.1:${collector.opsPort}/metrics`)
            ).text();
            const m = /^periscope_collector_process_socket_owners_filtered_total (\d+)/m.exec(text);
            return m !== null && Number(m[1]) > 0 ? Number(m[1]) : undefined;
          },
          { what: "socket owners skipped in unwatched namespaces counted" },
        );
        expect(filtered).toBeGreaterThan(0);
        // The flow's trace records (SYN leaving ifA) carry the same hash, so the same partition.
        const traces = raw.frames
          .flatMap((f) => rawFrameRecords(f).records)
          .filter((r) => r[0] === RECORD_TYPE_TRACE)
          .map(decodeTraceRecord)
          .filter((t) => t.flowHash === owner.o.flowHash);
        expect(traces.length).toBeGreaterThan(0);
        // Lifecycle frames: contiguous seq from 1, records_before adds up.
        let before_ = 0n;
        proc.frames.forEach((f, i) => {
          expect(f.seq).toBe(BigInt(i + 1));
          expect(f.recordsBefore).toBe(before_);
          before_ += BigInt(f.records.length) + f.kernelLost + f.collectorLost;
        });
      } finally {
        await collector.stop();
        proc.close();
        raw.close();
      }
      // The kernel frees a detached program after a grace period, so wait for it to go.
      const left = await waitForValue(
        async () => {
          const after = await loadedProgIds();
          const extra = [...after].filter((id) => !before.has(id));
          return extra.length === 0 ? extra : undefined;
        },
        { what: "the collector's programs unloaded", timeoutMs: 10_000 },
      );
      expect(left).toEqual([]);
    }, 45_000);
  },
);
