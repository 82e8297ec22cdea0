import { MESSAGE_TYPE } from "@periscope/model";
import {
  DropReason,
  FileInfoSchema,
  type Flow,
  TraceObservationPoint,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { DROP_SOURCE, type DropRecord, FLAG_L3 } from "@periscope/wire";
import { hubbleReasonForKernel } from "./drop-reasons.ts";
import { messageFactory } from "./message.ts";
import { observationPoint, trafficDirection } from "./observation.ts";
import { decodePacket } from "./packet/decode.ts";
import { ETHERTYPE } from "./packet/ethernet.ts";
import type { DecodedPacket } from "./packet/types.ts";
import { type DecodeContext, eventType, fillPacket, recordFlow } from "./trace.ts";

const newFileInfo = messageFactory(FileInfoSchema);

/** What decodeDropFlow needs besides {@link DecodeContext}. */
export interface DropDecodeContext extends DecodeContext {
  /**
   * Name of a kernel drop reason value on the node that sent the record (enum
   * skb_drop_reason without the `SKB_DROP_REASON_` prefix), if known: the numbers
   * differ between kernels, so each collector publishes its kernel's table.
   */
  dropReasonName?(reason: number): string | undefined;
  /** `symbol+0xoffset` of the kernel address that dropped the packet, once its node named it. */
  dropLocationName?(location: bigint): string | undefined;
}

/** Name used for a kernel reason value whose name is not known. */
export function unknownKernelReason(reason: number): string {
  return `REASON_${reason}`;
}

function decodeDropPacket(rec: DropRecord): DecodedPacket {
  if (rec.data.length === 0) return { truncated: rec.origLen > 0 };
  if ((rec.flags & FLAG_L3) === 0) return decodePacket(rec.data, "ethernet");
  // Only IP is decoded from the network header; other L3 protocols keep no layers.
  const version = (rec.data[0] ?? 0) >> 4;
  const ip =
    rec.l3Proto === ETHERTYPE.IPV4 ||
    rec.l3Proto === ETHERTYPE.IPV6 ||
    (rec.l3Proto === 0 && (version === 4 || version === 6));
  return ip ? decodePacket(rec.data, "ip") : { truncated: false };
}

/**
 * Turn a drop record into the flow.Flow Hubble would produce for a drop: DROPPED,
 * event_type {1, Cilium drop reason}, drop_reason(_desc), addresses, ports, endpoints,
 * interface, summary. Kernel drops (skb:kfree_skb) carry the kernel's reason name in
 * ext_drop_reason_desc (`NO_SOCKET`), the closest Hubble reason in drop_reason_desc and,
 * once the node named the address, the dropping kernel function in file.name;
 * policy drops are POLICY_DENIED at their tc observation point.
 * @throws PacketDecodeError when the captured packet is malformed.
 */
export function decodeDropFlow(rec: DropRecord, ctx: DropDecodeContext): Flow {
  const packet = decodeDropPacket(rec);
  const flow = recordFlow(rec, ctx, Verdict.DROPPED);

  let desc: DropReason;
  if (rec.dropSource === DROP_SOURCE.KERNEL) {
    const name = ctx.dropReasonName?.(rec.reason) ?? unknownKernelReason(rec.reason);
    desc = hubbleReasonForKernel(name);
    flow.extDropReasonDesc = name;
    // Cilium puts the datapath source file of a drop here; for the kernel, the function.
    const where = rec.location !== 0n ? ctx.dropLocationName?.(rec.location) : undefined;
    if (where !== undefined) {
      const file = newFileInfo();
      file.name = where;
      flow.file = file;
    }
    flow.traceObservationPoint = TraceObservationPoint.UNKNOWN_POINT;
    flow.trafficDirection = TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN;
  } else {
    // Policy drops carry Cilium's numbering already (133 = POLICY_DENIED).
    desc = DropReason[rec.reason] !== undefined ? rec.reason : DropReason.DROP_REASON_UNKNOWN;
    flow.traceObservationPoint = observationPoint(rec.obsPoint);
    flow.trafficDirection = trafficDirection(rec.obsPoint);
  }
  flow.dropReason = desc;
  flow.dropReasonDesc = desc;
  flow.eventType = eventType(MESSAGE_TYPE.DROP, desc);
  fillPacket(flow, packet, rec, ctx);
  return flow;
}
