import { describe, expect, test } from "bun:test";
import { BusInputError } from "./errors.ts";
import { encodeBeat, type PresenceBeat, parseBeat } from "./presence-beat.ts";
import { PresenceTable } from "./presence-table.ts";

const base: PresenceBeat = {
  service: "collector",
  node: "n1",
  instance: "h-1",
  host: "h",
  pid: 1,
  state: "up",
  startedMs: 1,
  sentMs: 2,
  intervalMs: 1000,
};

describe("presence beat version", () => {
  test("a beat carries the sender's version; older beats without it still parse", () => {
    expect(parseBeat(encodeBeat({ ...base, version: "periscope 0.1.0" })).version).toBe(
      "periscope 0.1.0",
    );
    expect(parseBeat(encodeBeat(base)).version).toBeUndefined();
  });

  test("a non-string version is refused by name", () => {
    const bad = new TextEncoder().encode(JSON.stringify({ ...base, version: 3 }));
    expect(() => parseBeat(bad)).toThrow(BusInputError);
    expect(() => parseBeat(bad)).toThrow(/version/);
  });

  test("PresenceTable.live lists live instances only", () => {
    const t = new PresenceTable({}, 0);
    t.observe({ ...base, node: "a" }, 0);
    t.observe({ ...base, node: "b", instance: "h-2" }, 0);
    t.observe({ ...base, node: "b", instance: "h-2", state: "stopping" }, 10);
    expect(t.live(500).map((b) => b.node)).toEqual(["a"]);
    expect(t.live(5000)).toEqual([]);
  });
});
