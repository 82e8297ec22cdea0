import { describe, expect, test } from "bun:test";
import { decodePresenceHeader, PRESENCE_HEADER, type PresenceReport } from "@periscope/bus";
import { applyPresence } from "./presence.ts";

const nodes = () => ({
  connected: [{ name: "n1" }, { name: "n2" }],
  unavailable: [{ name: "n3" }],
});

const report = (collectorDownOn: string[]): PresenceReport => ({
  state: collectorDownOn.length > 0 ? "degraded" : "ok",
  services: [
    {
      service: "collector",
      state: collectorDownOn.length > 0 ? "degraded" : "ok",
      live: 1,
      lost: [],
      nodesWithout: collectorDownOn,
    },
  ],
  problems: collectorDownOn.map((n) => `collector: lost on ${n}`),
});

describe("observer presence", () => {
  test.each([
    [[], ["n1", "n2"], ["n3"]],
    [["n2"], ["n1"], ["n3", "n2"]],
    [["n9"], ["n1", "n2"], ["n3"]],
  ])(
    "presence - collector lost on %p: connected %p, unavailable %p",
    (down, connected, unavailable) => {
      const got = applyPresence({ report: () => report(down) }, nodes());
      expect(got.connected.map((n) => n.name)).toEqual(connected);
      expect(got.unavailable.map((n) => n.name)).toEqual(unavailable);
    },
  );

  test("presence - the report travels in the response header; without a source nothing changes", () => {
    const header = new Headers();
    applyPresence({ report: () => report(["n1"]) }, nodes(), header);
    expect(decodePresenceHeader(header.get(PRESENCE_HEADER) ?? "")).toEqual(report(["n1"]));
    const plain = new Headers();
    expect(applyPresence(undefined, nodes(), plain)).toEqual(nodes());
    expect(plain.get(PRESENCE_HEADER)).toBeNull();
  });
});
