import { MESSAGE_TYPE } from "@periscope/model";
import {
  type DNS,
  DNSSchema,
  type Flow,
  FlowSchema,
  FlowType,
  type HTTP,
  type HTTPHeader,
  HTTPHeaderSchema,
  HTTPSchema,
  L7FlowType,
  Layer4Schema,
  Layer7Schema,
  TCPSchema,
  UDPSchema,
  Verdict,
} from "@periscope/proto";
import { messageFactory } from "../message.ts";
import { eventType } from "../trace.ts";
import { type DnsMessage, dnsRcodeText, dnsTypeName } from "./dns.ts";

const newFlow = messageFactory(FlowSchema);
const newLayer7 = messageFactory(Layer7Schema);
const newLayer4 = messageFactory(Layer4Schema);
const newTCP = messageFactory(TCPSchema);
const newUDP = messageFactory(UDPSchema);
const newDNS = messageFactory(DNSSchema);
const newHTTP = messageFactory(HTTPSchema);
const newHeader = messageFactory(HTTPHeaderSchema);

/**
 * flow.DNS.observation_source of records parsed from captured packets. Hubble's
 * proxy says "proxy"; its summary then reads "(Proxy …)", for any other source "(Query …)".
 */
export const DNS_OBSERVATION_SOURCE = "packet";

/**
 * flow.DNS for a parsed message, as Hubble fills it: requests carry query,
 * observation source and qtypes; responses also ips, ttl (the smallest of the
 * A/AAAA/CNAME answers, 0 when there are none), cnames (targets), rcode and
 * rrtypes (every answer record's type). The query is the first question's name.
 */
export function dnsRecord(msg: DnsMessage): DNS {
  const dns = newDNS();
  dns.query = msg.questions[0]?.name ?? "";
  dns.observationSource = DNS_OBSERVATION_SOURCE;
  dns.qtypes = msg.questions.map((q) => dnsTypeName(q.type));
  if (!msg.qr) return dns;
  let ttl = -1;
  for (const a of msg.answers) {
    dns.rrtypes.push(dnsTypeName(a.type));
    if (a.ip !== undefined) dns.ips.push(a.ip);
    else if (a.target !== undefined) dns.cnames.push(a.target);
    else continue;
    if (ttl < 0 || a.ttl < ttl) ttl = a.ttl;
  }
  dns.ttl = Math.max(ttl, 0);
  dns.rcode = msg.rcode;
  return dns;
}

/** Hubble's DNS summary: "DNS Query example.com. A", "DNS Answer \"1.2.3.4\" TTL: 300 (Query example.com. A)". */
export function dnsSummary(type: L7FlowType, dns: DNS): string {
  const qtypes = dns.qtypes.join(",");
  if (type === L7FlowType.REQUEST) return `DNS Query ${dns.query} ${qtypes}`;
  let answer: string;
  if (dns.rcode !== 0) {
    answer = `RCode: ${dnsRcodeText(dns.rcode)}`;
  } else {
    const parts: string[] = [];
    if (dns.ips.length > 0) parts.push(JSON.stringify(dns.ips.join(",")));
    if (dns.cnames.length > 0) parts.push(`CNAMEs: ${JSON.stringify(dns.cnames.join(","))}`);
    answer = parts.join(" ");
  }
  const source = dns.observationSource === "proxy" ? "Proxy" : "Query";
  return `DNS Answer ${answer} TTL: ${dns.ttl} (${source} ${dns.query} ${qtypes})`;
}

/** What an HTTP L7 flow says. */
export interface HttpFields {
  method: string;
  url: string;
  protocol: string;
  /** Status code; 0 on requests. */
  code: number;
  headers: readonly HTTPHeader[];
}

/** flow.HTTP: requests without a code, like Hubble. */
export function httpRecord(fields: HttpFields): HTTP {
  const http = newHTTP();
  http.method = fields.method;
  http.url = fields.url;
  http.protocol = fields.protocol;
  http.code = fields.code;
  http.headers = [...fields.headers];
  return http;
}

/** One flow.HTTPHeader. */
export function httpHeader(key: string, value: string): HTTPHeader {
  const h = newHeader();
  h.key = key;
  h.value = value;
  return h;
}

/** Hubble's HTTP summary: "HTTP/1.1 GET http://h/p", "HTTP/1.1 200 3ms (GET http://h/p)". */
export function httpSummary(type: L7FlowType, http: HTTP, latencyNs: bigint): string {
  const request = `${http.method} ${http.url}`;
  if (type === L7FlowType.REQUEST) return `${http.protocol} ${request}`;
  return `${http.protocol} ${http.code} ${latencyNs / 1_000_000n}ms (${request})`;
}

/** What distinguishes an L7 flow from the packet flow it was parsed from. */
export interface L7FlowInit {
  type: L7FlowType;
  /** Request to response, ns; responses only. */
  latencyNs?: bigint;
  record: { case: "dns"; value: DNS } | { case: "http"; value: HTTP };
  summary: string;
  uuid: string;
}

/**
 * An L7 flow (Type L7, event_type 129, verdict FORWARDED) for the packet flow
 * `base` it was parsed from: same time, node, addresses, endpoints, names and
 * direction; l4 keeps the ports without TCP flags, as in Hubble's L7 flows;
 * is_reply is true for responses.
 */
export function l7Flow(base: Flow, init: L7FlowInit): Flow {
  const flow = newFlow();
  flow.time = base.time;
  flow.uuid = init.uuid;
  flow.verdict = Verdict.FORWARDED;
  flow.Type = FlowType.L7;
  flow.nodeName = base.nodeName;
  flow.eventType = eventType(MESSAGE_TYPE.L7, 0);
  flow.ethernet = base.ethernet;
  flow.IP = base.IP;
  flow.l4 = portsOnly(base);
  flow.source = base.source;
  flow.destination = base.destination;
  flow.sourceNames = base.sourceNames;
  flow.destinationNames = base.destinationNames;
  flow.trafficDirection = base.trafficDirection;
  flow.isReply = init.type === L7FlowType.RESPONSE;
  flow.reply = flow.isReply;
  const l7 = newLayer7();
  l7.type = init.type;
  l7.latencyNs = init.latencyNs ?? 0n;
  l7.record = init.record;
  flow.l7 = l7;
  flow.Summary = init.summary;
  return flow;
}

function portsOnly(base: Flow): Flow["l4"] {
  const p = base.l4?.protocol;
  if (p?.case === "TCP") {
    const tcp = newTCP();
    tcp.sourcePort = p.value.sourcePort;
    tcp.destinationPort = p.value.destinationPort;
    const l4 = newLayer4();
    l4.protocol = { case: "TCP", value: tcp };
    return l4;
  }
  if (p?.case === "UDP") {
    const udp = newUDP();
    udp.sourcePort = p.value.sourcePort;
    udp.destinationPort = p.value.destinationPort;
    const l4 = newLayer4();
    l4.protocol = { case: "UDP", value: udp };
    return l4;
  }
  return base.l4;
}
