import type { DNS, Flow, HTTP } from "@periscope/proto";

/** The flow's HTTP record, when it carries one. */
export function httpOf(flow: Flow): HTTP | undefined {
  const record = flow.l7?.record;
  return record?.case === "http" ? record.value : undefined;
}

/** The flow's DNS record, when it carries one. */
export function dnsOf(flow: Flow): DNS | undefined {
  const record = flow.l7?.record;
  return record?.case === "dns" ? record.value : undefined;
}
