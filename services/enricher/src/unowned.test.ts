import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Bus, connectBus, ensureStream, subjects } from "@periscope/bus";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { findUnownedFrames } from "./unowned.ts";

const log = createLogger("unowned-test", "silent");
let nats: LocalNats;
let bus: Bus;

beforeAll(async () => {
  nats = await startLocalNats({});
  bus = await connectBus({ url: nats.url, name: "unowned-test", log });
  await ensureStream(bus, "raw");
});
afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

test("unowned - frames on partitions beyond the enrichers' count are found and counted", async () => {
  const js = bus.js();
  expect(await findUnownedFrames(bus, 16)).toEqual({ frames: 0, partitions: [] });
  await js.publish(subjects.raw("n1", 3), new Uint8Array([1]));
  await js.publish(subjects.raw("n1", 16), new Uint8Array([1]));
  await js.publish(subjects.raw("n2", 16), new Uint8Array([1]));
  await js.publish(subjects.raw("n2", 31), new Uint8Array([1]));
  expect(await findUnownedFrames(bus, 16)).toEqual({ frames: 3, partitions: [16, 31] });
  expect(await findUnownedFrames(bus, 32)).toEqual({ frames: 0, partitions: [] });
});
