import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  type DebugEvent,
  DebugEventSchema,
  DebugEventTypeSchema,
  EndpointSchema,
} from "@periscope/proto";
import type { DebugRecord } from "@periscope/wire";
import type { DecodeContext } from "./trace.ts";
import { bootTimeToTimestamp } from "./trace.ts";

/** `DBG_CT_CREATED` for 9, `DBG_EVENT_UNKNOWN` for numbers flow.DebugEventType lacks. */
export function debugTypeName(type: number): string {
  return DebugEventTypeSchema.values.find((v) => v.number === type)?.name ?? "DBG_EVENT_UNKNOWN";
}

/** A kernel debug record as Hubble's flow.DebugEvent, with the time it happened. */
export interface DecodedDebugEvent {
  readonly event: DebugEvent;
  readonly time: Timestamp;
}

/**
 * Turns a debug record into a flow.DebugEvent: type = the record's subtype, hash =
 * flow_hash, arg1..3, cpu, and a message naming the type, the device and the
 * arguments. The source endpoint carries the device's pod when `ctx.endpointOfDevice`
 * knows one (debug records carry no address).
 */
export function decodeDebugEvent(
  rec: DebugRecord,
  ctx: DecodeContext & {
    endpointOfDevice?(
      ifindex: number,
      netnsCookie: bigint,
    ): { namespace: string; podName: string } | undefined;
  },
): DecodedDebugEvent {
  const ifname = rec.ifindex !== 0 ? ctx.ifName?.(rec.ifindex, rec.netnsCookie) : undefined;
  const device =
    rec.ifindex === 0
      ? ""
      : ` on ${ifname ? `${ifname} (${rec.ifindex})` : `ifindex ${rec.ifindex}`}`;
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const event = create(DebugEventSchema, {
    type: rec.subtype,
    hash: rec.flowHash,
    arg1: rec.arg1,
    arg2: rec.arg2,
    arg3: rec.arg3,
    cpu: rec.cpu,
    message: `${debugTypeName(rec.subtype)}${device}: arg1=${hex(rec.arg1)} arg2=${hex(rec.arg2)} arg3=${hex(rec.arg3)}`,
  });
  const ep = ctx.endpointOfDevice?.(rec.ifindex, rec.netnsCookie);
  if (ep) event.source = create(EndpointSchema, { namespace: ep.namespace, podName: ep.podName });
  return { event, time: bootTimeToTimestamp(rec.tsBootNs, ctx.bootToRealtimeNs) };
}
