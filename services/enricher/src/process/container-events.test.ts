/**
 * The container event counters without a Docker engine. The publisher against the real
 * engine (announcements, changes, replicas sharing partition 0) is tested in
 * tests/container-events.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectBus } from "@periscope/bus";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { freePort, type LocalNats, promtoolCheckMetrics, startLocalNats } from "@periscope/testing";
import { startEnricher } from "../enricher.ts";
import { ContainerCache } from "./container-cache.ts";
import { publishContainerEvents } from "./container-events.ts";
import { containerEventCounts } from "./testing.ts";

const log = createLogger("container-events-test", "silent");
const NODE = "ce-node";
/** Long enough that only a recheck (or a change) notices a new role. */
const NEVER_MS = 3_600_000;

describe("container events", () => {
  let nats: LocalNats;
  let dir: string;

  beforeAll(async () => {
    nats = await startLocalNats({});
    dir = mkdtempSync(join(tmpdir(), "periscope-ce-"));
  });
  afterAll(async () => {
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("container events - counter family passes promtool check metrics", async () => {
    const bus = await connectBus({ url: nats.url, name: "ce-c", log });
    // A cache without an engine socket: it knows no container, every kind stays 0.
    const cache = new ContainerCache({ dockerSocket: join(dir, "no-engine.sock") });
    await cache.start();
    const metrics = createMetrics("enricher");
    const pub = publishContainerEvents({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      metrics,
      checkMs: NEVER_MS,
    });
    try {
      const text = await metrics.registry.metrics();
      const ours = text
        .split("\n")
        .filter((l) => /^(# (HELP|TYPE) )?periscope_enricher_container_events_total/.test(l));
      expect(ours).toHaveLength(5);
      expect(ours).toContain("# TYPE periscope_enricher_container_events_total counter");
      expect(await containerEventCounts(metrics)).toEqual({
        published: 0,
        announced: 0,
        skipped: 0,
      });
      expect(await promtoolCheckMetrics(`${ours.join("\n")}\n`)).toEqual({ code: 0, output: "" });
    } finally {
      pub.stop();
      cache.stop();
      await bus.close();
    }
  });

  test("container events - a running enricher exports the counters, every kind from the start", async () => {
    const port = await freePort();
    // Another test may run a Docker engine now: its containers are then announced.
    const engine = existsSync("/var/run/docker.sock");
    const enricher = await startEnricher(
      {
        natsUrl: nats.url,
        nodeName: "ce-enricher",
        opsAddr: `127.0.0.1:${port}`,
        logLevel: "silent",
        queueGroup: "ce-enrichers",
      },
      log,
    );
    try {
      const text = await (await fetch(`http://127.0.0.1:${enricher.opsPort}/metrics`)).text();
      for (const kind of ["published", "announced", "skipped"]) {
        const sample = new RegExp(
          `^periscope_enricher_container_events_total\\{kind="${kind}"\\} (\\d+)$`,
          "m",
        ).exec(text);
        expect(sample).not.toBeNull();
        // No engine: nothing to announce, nothing changes.
        if (!engine) expect(sample?.[1]).toBe("0");
      }
    } finally {
      await enricher.stop();
    }
  }, 20_000);
});
