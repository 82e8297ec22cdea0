import { Verdict } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { TableCounter } from "../table.ts";

/** DNS rcode names as Hubble's dns handler labels them. */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: "No Error",
  1: "Format Error",
  2: "Server Failure",
  3: "Non-Existent Domain",
  4: "Not Implemented",
  5: "Query Refused",
  6: "Name Exists when it should not",
  7: "RR Set Exists when it should not",
  8: "RR Set that should exist does not",
  9: "Not Authorized",
  10: "Name not contained in zone",
  11: "DSO-TYPE Not Implemented",
  16: "Bad OPT Version",
  17: "Key not recognized",
  18: "Signature out of time window",
  19: "Bad TKEY Mode",
  20: "Duplicate key name",
  21: "Algorithm not supported",
  22: "Bad Truncation",
  23: "Bad/missing Server Cookie",
};

/**
 * `hubble_dns_queries_total` and `hubble_dns_responses_total{...context,rcode,qtypes,
 * ips_returned[,query]}` and `hubble_dns_response_types_total{...context,type,qtypes[,query]}`
 * from DNS L7 flows. Options: `query` adds the query name label, `ignoreAAAA` skips
 * AAAA-only queries and responses. A dropped DNS flow counts as a query with rcode
 * "Policy denied".
 */
export const dnsHandler: HandlerFactory = ({ registry, limit, journal, context, options }) => {
  const withQuery = options.has("query");
  const ignoreAAAA = options.has("ignoreaaaa");
  const ctx = contextLabelNames(context);
  const q = withQuery ? ["query"] : [];
  const common = [...ctx, "rcode", "qtypes", "ips_returned", ...q];
  const queries = new TableCounter({
    name: "hubble_dns_queries_total",
    help: "Number of DNS queries observed",
    labelNames: common,
    registry,
    limit,
    journal,
  });
  const responses = new TableCounter({
    name: "hubble_dns_responses_total",
    help: "Number of DNS responses observed",
    labelNames: common,
    registry,
    limit,
    journal,
  });
  const responseTypes = new TableCounter({
    name: "hubble_dns_response_types_total",
    help: "Number of DNS response types",
    labelNames: [...ctx, "type", "qtypes", ...q],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      const l7 = flow.l7;
      if (l7?.record.case !== "dns") return;
      const dns = l7.record.value;
      if (ignoreAAAA && dns.qtypes.length === 1 && dns.qtypes[0] === "AAAA") return;
      const qtypes = dns.qtypes.join(",");
      values.length = 0;
      contextLabelValues(context, flow, values);
      const n = values.length;
      const dropped = flow.verdict === Verdict.DROPPED;
      const reply = flow.isReply === true;
      const rcode = dropped
        ? "Policy denied"
        : reply
          ? (RCODE_NAMES[dns.rcode] ?? String(dns.rcode))
          : "";
      values.push(rcode, qtypes, String(dns.ips.length));
      if (withQuery) values.push(dns.query);
      if (dropped || !reply) {
        queries.add(values);
        return;
      }
      responses.add(values);
      for (const rrtype of dns.rrtypes) {
        values.length = n;
        values.push(rrtype, qtypes);
        if (withQuery) values.push(dns.query);
        responseTypes.add(values);
      }
    },
  };
};
