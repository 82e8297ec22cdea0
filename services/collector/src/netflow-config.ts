/**
 * Flow export settings of the collector (flags and their PERISCOPE_* twins), parsed
 * into a frozen {@link NetflowConfig}. Defaults follow the NetObserv eBPF agent where
 * it has the setting (CACHE_ACTIVE_TIMEOUT 5 s, DEDUPER firstCome, DEDUPER_JUST_MARK
 * false); the idle timeout is Periscope's own (NetObserv evicts everything each active
 * timeout).
 */
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { DEFAULT_FLOW_ENTRIES, MAX_FLOW_ENTRIES } from "@periscope/bpf";
import { ConfigError, parseHostPort, type ServiceSettings } from "@periscope/config";
// parseDurationMs is only called at parse time, so importing from config.ts (which imports
// this module) is safe.
import { parseDurationMs } from "./config.ts";

/** What happens to a flow seen on several interfaces of the node. */
export type FlowDedupeMode = "drop" | "mark" | "off";

/** Validated flow export settings. */
export interface NetflowConfig {
  /** Flow accounting and export on. */
  readonly enabled: boolean;
  /** A record is emitted at the latest this long after its first packet, ms. */
  readonly activeTimeoutMs: number;
  /** A flow without packets for this long is emitted and forgotten, ms. */
  readonly idleTimeoutMs: number;
  /** Entries of each kernel flow table generation. */
  readonly tableEntries: number;
  readonly dedupe: FlowDedupeMode;
  /** IPFIX collector (UDP) to export to, if any. */
  readonly ipfixCollector?: { readonly host: string; readonly port: number };
  /** Records waiting per exporter before new ones are dropped (and counted). */
  readonly queueRecords: number;
  /** The address records name as their agent (IPFIX exporter, NetObserv AgentIP). */
  readonly agentIp: string;
}

/** Flow export settings, flag name (without `--`) → environment variable. */
export const NETFLOW_SETTINGS = {
  "flow-export": "PERISCOPE_FLOW_EXPORT",
  "flow-active-timeout": "PERISCOPE_FLOW_ACTIVE_TIMEOUT",
  "flow-idle-timeout": "PERISCOPE_FLOW_IDLE_TIMEOUT",
  "flow-table-entries": "PERISCOPE_FLOW_TABLE_ENTRIES",
  "flow-dedupe": "PERISCOPE_FLOW_DEDUPE",
  "ipfix-collector": "PERISCOPE_IPFIX_COLLECTOR",
  "flow-queue-records": "PERISCOPE_FLOW_QUEUE_RECORDS",
  "agent-ip": "PERISCOPE_AGENT_IP",
} as const;

type NetflowSetting = keyof typeof NETFLOW_SETTINGS;

function duration(raw: string | undefined, fallback: number, field: string): number {
  return raw === undefined ? fallback : parseDurationMs(raw, field, 100, 86_400_000);
}

/** An IPFIX collector address, `host:port` or `[v6]:port`, port 1..65535. */
function collectorAddress(raw: string, field: string): { host: string; port: number } {
  const hp = parseHostPort(raw, field);
  if (hp.port === 0) throw new ConfigError(field, `"${raw}": port must be 1..65535`);
  return hp;
}

/** The first non-internal IPv4 address of this host (else IPv6, else 127.0.0.1). */
export function defaultAgentIp(): string {
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const external = all.filter((a) => !a.internal);
  return external.find((a) => a.family === "IPv4")?.address ?? external[0]?.address ?? "127.0.0.1";
}

function onOff(raw: string | undefined, fallback: boolean, field: string): boolean {
  if (raw === undefined) return fallback;
  const v = raw.trim().toLowerCase();
  if (["on", "true", "1", "yes"].includes(v)) return true;
  if (["off", "false", "0", "no"].includes(v)) return false;
  throw new ConfigError(field, `"${raw}" is not on or off`);
}

/**
 * Reads the flow export settings. `--ipfix-collector` alone turns export on.
 * @throws ConfigError naming the flag or variable that was wrong.
 */
export function parseNetflowConfig(
  s: ServiceSettings<NetflowSetting>,
  hostAgentIp: () => string = defaultAgentIp,
): NetflowConfig {
  const ipfixRaw = s.get("ipfix-collector");
  const ipfix =
    ipfixRaw === undefined || ipfixRaw.trim() === ""
      ? undefined
      : collectorAddress(ipfixRaw, s.source("ipfix-collector"));
  const dedupe = (s.get("flow-dedupe") ?? "drop").trim().toLowerCase();
  if (dedupe !== "drop" && dedupe !== "mark" && dedupe !== "off") {
    throw new ConfigError(s.source("flow-dedupe"), `"${dedupe}" is not one of drop, mark, off`);
  }
  const agentIp = s.get("agent-ip")?.trim() || hostAgentIp();
  if (isIP(agentIp) === 0) {
    throw new ConfigError(s.source("agent-ip"), `"${agentIp}" is not an IP address`);
  }
  const activeTimeoutMs = duration(
    s.get("flow-active-timeout"),
    5000,
    s.source("flow-active-timeout"),
  );
  const idleTimeoutMs = duration(s.get("flow-idle-timeout"), 15_000, s.source("flow-idle-timeout"));
  return Object.freeze({
    enabled: onOff(s.get("flow-export"), ipfix !== undefined, s.source("flow-export")),
    activeTimeoutMs,
    idleTimeoutMs,
    tableEntries: s.integer("flow-table-entries", DEFAULT_FLOW_ENTRIES, 1, MAX_FLOW_ENTRIES),
    dedupe,
    ...(ipfix !== undefined ? { ipfixCollector: Object.freeze(ipfix) } : {}),
    queueRecords: s.integer("flow-queue-records", 100_000, 1, 10_000_000),
    agentIp,
  });
}
