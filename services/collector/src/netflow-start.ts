/**
 * Wiring of the flow export into a running collector: exporters (NATS always, IPFIX when
 * a collector address is set), the endpoint registry for pod names when the bus has it,
 * interface names from the attacher, and the {@link NetflowService}.
 */
import { type Bus, type EndpointRegistry, openEndpointRegistry, subjects } from "@periscope/bus";
import { formatIPv4, formatIPv6 } from "@periscope/model";
import { IpfixExporter, type NetflowExporter } from "@periscope/netflow";
import type { Logger, Metrics } from "@periscope/telemetry";
import type { AttachedDevice } from "./attacher.ts";
import { type FlowSource, NetflowService } from "./netflow.ts";
import type { NetflowConfig } from "./netflow-config.ts";
import { NetflowMetrics } from "./netflow-metrics.ts";
import { NatsNetflowExporter } from "./netflow-nats.ts";

/** What {@link startNetflow} needs from the collector. */
export interface NetflowStartOptions {
  readonly config: NetflowConfig;
  readonly node: string;
  readonly source: FlowSource;
  readonly bus: Bus;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Subscribes to attaches (interface names outlive their device for late records). */
  readonly onAttach: (cb: (dev: AttachedDevice) => void) => void;
  readonly attached: () => readonly AttachedDevice[];
}

/** The running flow export of a collector. */
export interface RunningNetflow {
  readonly service: NetflowService;
  readonly metrics: NetflowMetrics;
  /** Exports what is left (end reason shutdown), closes exporters and the registry. */
  stop(): Promise<void>;
}

function addrText(addr: Uint8Array): string {
  return addr.length === 4 ? formatIPv4(addr, 0) : formatIPv6(addr, 0);
}

/** Starts flow accounting and export. @throws when the IPFIX collector does not resolve. */
export async function startNetflow(o: NetflowStartOptions): Promise<RunningNetflow> {
  const metrics = new NetflowMetrics(o.metrics);
  const names = new Map<string, string>();
  const remember = (d: AttachedDevice) =>
    names.set(`${d.netnsCookie}/${d.ifindex}`, d.target.ifname);
  for (const d of o.attached()) remember(d);
  o.onAttach(remember);
  const exporters: NetflowExporter[] = [
    new NatsNetflowExporter(
      { publish: (s, p) => o.bus.nc.publish(s, p), connected: () => o.bus.connected() },
      subjects.netflows(o.node),
      () => ({
        fallbackLostPackets: BigInt(metrics.stats.fallbackLost),
        exportDroppedRecords: BigInt(metrics.stats.exportDropped),
      }),
    ),
  ];
  const ipfix = o.config.ipfixCollector;
  if (ipfix !== undefined) exporters.push(await IpfixExporter.open(ipfix));
  let endpoints: EndpointRegistry | undefined;
  try {
    endpoints = await openEndpointRegistry(o.bus);
  } catch (err) {
    o.log.warn({ err }, "endpoint registry not available; flow records carry no pod names");
  }
  const service = new NetflowService({
    config: o.config,
    node: o.node,
    source: o.source,
    exporters,
    metrics,
    log: o.log,
    ifname: (cookie, ifindex) => names.get(`${cookie}/${ifindex}`) ?? "",
    ...(endpoints !== undefined
      ? {
          endpoint: (addr: Uint8Array) => {
            const info = endpoints.lookup(addrText(addr));
            return info === undefined
              ? undefined
              : { namespace: info.namespace, podName: info.podName };
          },
        }
      : {}),
  });
  service.start();
  o.log.info(
    {
      activeTimeoutMs: o.config.activeTimeoutMs,
      idleTimeoutMs: o.config.idleTimeoutMs,
      dedupe: o.config.dedupe,
      exporters: exporters.map((e) => e.name),
    },
    "flow export started",
  );
  return {
    service,
    metrics,
    async stop() {
      await service.stop();
      await o.bus.nc.flush().catch((err: unknown) => {
        o.log.warn({ err }, "flushing the last flow records to NATS failed");
      });
      await endpoints?.close();
    },
  };
}
