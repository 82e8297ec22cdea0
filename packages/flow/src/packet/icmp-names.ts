/**
 * ICMP type/code text as gopacket's ICMPv4TypeCode / ICMPv6TypeCode String()
 * prints it, which is what Hubble puts in flow summaries ("EchoRequest",
 * "DestinationUnreachable(Port)", "TimeExceeded(Code: 7)", "42(0)").
 */

interface TypeInfo {
  name: string;
  codes?: Readonly<Record<number, string>>;
}

const ICMPV4_TYPES: Readonly<Record<number, TypeInfo>> = {
  0: { name: "EchoReply" },
  3: {
    name: "DestinationUnreachable",
    codes: {
      0: "Net",
      1: "Host",
      2: "Protocol",
      3: "Port",
      4: "FragmentationNeeded",
      5: "SourceRoutingFailed",
      6: "NetUnknown",
      7: "HostUnknown",
      8: "SourceIsolated",
      9: "NetAdminProhibited",
      10: "HostAdminProhibited",
      11: "NetTOS",
      12: "HostTOS",
      13: "CommAdminProhibited",
      14: "HostPrecedence",
      15: "PrecedenceCutoff",
    },
  },
  4: { name: "SourceQuench" },
  5: { name: "Redirect", codes: { 0: "Net", 1: "Host", 2: "TOS+Net", 3: "TOS+Host" } },
  8: { name: "EchoRequest" },
  9: { name: "RouterAdvertisement" },
  10: { name: "RouterSolicitation" },
  11: { name: "TimeExceeded", codes: { 0: "TTLExceeded", 1: "FragmentReassemblyTimeExceeded" } },
  12: {
    name: "ParameterProblem",
    codes: { 0: "PointerIndicatesError", 1: "MissingOption", 2: "BadLength" },
  },
  13: { name: "TimestampRequest" },
  14: { name: "TimestampReply" },
  15: { name: "InfoRequest" },
  16: { name: "InfoReply" },
  17: { name: "AddressMaskRequest" },
  18: { name: "AddressMaskReply" },
};

const ICMPV6_TYPES: Readonly<Record<number, TypeInfo>> = {
  1: {
    name: "DestinationUnreachable",
    codes: {
      0: "NoRouteToDst",
      1: "AdminProhibited",
      2: "BeyondScopeOfSrc",
      3: "AddressUnreachable",
      4: "PortUnreachable",
      5: "SrcAddressFailedPolicy",
      6: "RejectRouteToDst",
    },
  },
  2: { name: "PacketTooBig" },
  3: {
    name: "TimeExceeded",
    codes: { 0: "HopLimitExceeded", 1: "FragmentReassemblyTimeExceeded" },
  },
  4: {
    name: "ParameterProblem",
    codes: { 0: "ErroneousHeaderField", 1: "UnrecognizedNextHeader", 2: "UnrecognizedNextHeader" },
  },
  128: { name: "EchoRequest" },
  129: { name: "EchoReply" },
  130: { name: "MLDv1MulticastListenerQuery" },
  131: { name: "MLDv1MulticastListenerReport" },
  132: { name: "MLDv1MulticastListenerDone" },
  133: { name: "RouterSolicitation" },
  134: { name: "RouterAdvertisement" },
  135: { name: "NeighborSolicitation" },
  136: { name: "NeighborAdvertisement" },
  137: { name: "Redirect" },
  143: { name: "MLDv2MulticastListenerReport" },
};

function typeCodeText(table: Readonly<Record<number, TypeInfo>>, type: number, code: number) {
  const info = table[type];
  if (!info) return `${type}(${code})`;
  if (!info.codes) return code === 0 ? info.name : `${info.name}(Code: ${code})`;
  const codeName = info.codes[code];
  return codeName === undefined ? `${info.name}(Code: ${code})` : `${info.name}(${codeName})`;
}

/** ICMPv4 type/code as Hubble prints it, e.g. "EchoRequest". */
export function icmpV4TypeCodeText(type: number, code: number): string {
  return typeCodeText(ICMPV4_TYPES, type, code);
}

/** ICMPv6 type/code as Hubble prints it, e.g. "EchoRequest". */
export function icmpV6TypeCodeText(type: number, code: number): string {
  return typeCodeText(ICMPV6_TYPES, type, code);
}
