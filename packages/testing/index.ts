/**
 * @periscope/testing — what tests and benchmarks share: packet builders,
 * network namespaces joined by veth pairs, BPF program lookups, and (from
 * @periscope/devstack) polling and command helpers. Test code only.
 */
export {
  canConnect,
  freePort,
  type LocalNats,
  promtoolCheckMetrics,
  type RunOptions,
  type RunResult,
  run,
  runOk,
  startLocalNats,
  type WaitOptions,
  waitFor,
  waitForValue,
} from "@periscope/devstack";
export { hasClsact, loadedProgIds, tcFilterProgIds } from "./bpf.ts";
export { removeCgroup } from "./cgroup.ts";
export {
  addQuietVeth,
  addVeth,
  createHostVeth,
  createNetnsPair,
  createVethPair,
  type HostVeth,
  ifindexOf,
  type LinkStats,
  linkStats,
  type NetnsPair,
  TEST_NETNS_PREFIX,
  type VethPair,
} from "./netns.ts";
export * from "./packets.ts";
