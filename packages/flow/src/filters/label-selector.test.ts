import { describe, expect, test } from "bun:test";
import { compileLabelSelector, parseLabel } from "./label-selector.ts";

const labels = ["k8s:app=web", "k8s:replicas=3", "tier=10", "k8s:version=v2", "neg=-4"].map(
  parseLabel,
);

describe("label selector", () => {
  const cases: [string, boolean][] = [
    ["replicas > 2", true],
    ["replicas>3", false],
    ["replicas < 4", true],
    ["k8s:replicas < 3", false],
    ["container:replicas > 1", false],
    ["tier > 9, app=web", true],
    ["tier > 9, app=db", false],
    ["neg < -3", true],
    ["neg > -3", false],
    ["version > 1", false],
    ["missing > 0", false],
    ["missing < 0", false],
    ["replicas > 9223372036854775807", false],
    ["replicas < -9223372036854775808", false],
  ];
  test.each(cases)("label selector - %p selects: %p", (selector, want) => {
    expect(compileLabelSelector(selector)(labels)).toBe(want);
  });

  test.each([
    "replicas > x",
    "replicas > 1.5",
    "replicas < ",
    "replicas >= 1",
    "a > 9223372036854775808",
  ])("label selector - rejects %p", (selector) => {
    expect(() => compileLabelSelector(selector)).toThrow(/replicas|integer|invalid/);
  });
});
