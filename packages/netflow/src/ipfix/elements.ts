/**
 * IPFIX information elements (RFC 7012 / IANA "IPFIX Information Elements") and the two
 * templates Periscope exports: one for IPv4 flows, one for IPv6 flows. Both carry the same
 * fields except the addresses and the ICMP type/code element.
 */

/** IANA element ids used by the templates. */
export const IE = {
  octetDeltaCount: 1,
  packetDeltaCount: 2,
  protocolIdentifier: 4,
  ipClassOfService: 5,
  tcpControlBits: 6,
  sourceTransportPort: 7,
  sourceIPv4Address: 8,
  ingressInterface: 10,
  destinationTransportPort: 11,
  destinationIPv4Address: 12,
  egressInterface: 14,
  sourceIPv6Address: 27,
  destinationIPv6Address: 28,
  icmpTypeCodeIPv4: 32,
  sourceMacAddress: 56,
  flowDirection: 61,
  destinationMacAddress: 80,
  droppedOctetDeltaCount: 132,
  droppedPacketDeltaCount: 133,
  flowEndReason: 136,
  icmpTypeCodeIPv6: 139,
  flowStartMilliseconds: 152,
  flowEndMilliseconds: 153,
} as const;

/** One field of a template: element id and encoded length in bytes. */
export interface TemplateField {
  readonly id: number;
  readonly length: number;
}

/** A template: its id (≥ 256) and fields in record order. */
export interface Template {
  readonly id: number;
  readonly fields: readonly TemplateField[];
  /** Bytes of one data record (sum of the field lengths). */
  readonly recordLength: number;
}

/** Template id of IPv4 flow records. */
export const TEMPLATE_ID_V4 = 256;
/** Template id of IPv6 flow records. */
export const TEMPLATE_ID_V6 = 257;

function template(id: number, fields: readonly TemplateField[]): Template {
  return { id, fields, recordLength: fields.reduce((n, f) => n + f.length, 0) };
}

function flowFields(family: 4 | 6): TemplateField[] {
  const addr = family === 4 ? 4 : 16;
  return [
    { id: IE.octetDeltaCount, length: 8 },
    { id: IE.packetDeltaCount, length: 8 },
    { id: IE.flowStartMilliseconds, length: 8 },
    { id: IE.flowEndMilliseconds, length: 8 },
    { id: family === 4 ? IE.sourceIPv4Address : IE.sourceIPv6Address, length: addr },
    { id: family === 4 ? IE.destinationIPv4Address : IE.destinationIPv6Address, length: addr },
    { id: IE.sourceTransportPort, length: 2 },
    { id: IE.destinationTransportPort, length: 2 },
    { id: IE.protocolIdentifier, length: 1 },
    { id: IE.ipClassOfService, length: 1 },
    { id: IE.tcpControlBits, length: 2 },
    { id: family === 4 ? IE.icmpTypeCodeIPv4 : IE.icmpTypeCodeIPv6, length: 2 },
    { id: IE.ingressInterface, length: 4 },
    { id: IE.egressInterface, length: 4 },
    { id: IE.flowDirection, length: 1 },
    { id: IE.sourceMacAddress, length: 6 },
    { id: IE.destinationMacAddress, length: 6 },
    { id: IE.flowEndReason, length: 1 },
    { id: IE.droppedOctetDeltaCount, length: 8 },
    { id: IE.droppedPacketDeltaCount, length: 8 },
  ];
}

/** The IPv4 flow template (88-byte records). */
export const TEMPLATE_V4: Template = template(TEMPLATE_ID_V4, flowFields(4));
/** The IPv6 flow template (112-byte records). */
export const TEMPLATE_V6: Template = template(TEMPLATE_ID_V6, flowFields(6));

/** RFC 5102/IANA flowEndReason values. */
export const FLOW_END_REASON = {
  idleTimeout: 1,
  activeTimeout: 2,
  endOfFlowDetected: 3,
  forcedEnd: 4,
  lackOfResources: 5,
} as const;
