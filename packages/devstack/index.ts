export {
  DEFAULT_RESTART_POLICY,
  formatDelay,
  RestartBackoff,
  type RestartPolicy,
} from "./backoff.ts";
export { DevstackError, LocalNatsError, WaitAbortedError, WaitTimeoutError } from "./errors.ts";
export {
  canConnect,
  freePort,
  type LocalNats,
  type LocalNatsOptions,
  type NatsLogSink,
  startLocalNats,
} from "./nats.ts";
export { cleanupStale, deleteNetns, listNetns, nsExec } from "./netns.ts";
export {
  promtoolCheckMetrics,
  type RunOptions,
  type RunResult,
  run,
  runOk,
} from "./run.ts";
export {
  type StartOptions,
  type StopOptions,
  type SupervisedProcess,
  Supervisor,
  type SupervisorEvent,
  type SupervisorOptions,
} from "./supervisor.ts";
export {
  BRIDGE_IPV4,
  BRIDGE_IPV6,
  createDemoTopology,
  DEFAULT_PODS,
  type NodeInfo,
  type Pod,
  type PodProcess,
  type PodSpec,
  type Topology,
  type TopologyOptions,
} from "./topology.ts";
export {
  type DemoTraffic,
  type DemoTrafficOptions,
  demoTraffic,
  type TrafficStats,
} from "./traffic.ts";
export { type WaitOptions, waitFor, waitForValue } from "./wait.ts";
