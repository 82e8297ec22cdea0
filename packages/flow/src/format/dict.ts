import { type GetFlowsResponse, NodeState } from "@periscope/proto";
import {
  type CompactOptions,
  flowHosts,
  flowSummary,
  flowVerdict,
  layoutOf,
  lostSource,
  lostSummary,
  nodeStatusNames,
} from "./compact.ts";
import { flowTypeText } from "./flow-type.ts";
import { escapeTerminal } from "./style.ts";
import { formatTimestamp } from "./time.ts";

/** Line hubble's dict output prints between two blocks. */
export const DICT_SEPARATOR = "------------";

/**
 * One event in hubble observe's `-o dict`: right-aligned `KEY: value` lines (TIMESTAMP in
 * the chosen time layout, NODE with `nodeName`, SOURCE, DESTINATION, TYPE, VERDICT,
 * SUMMARY as the compact format prints them). Lost events print their source and
 * `CPU(n) - count`, node status changes STATE, NODES and MESSAGE. No separator: the
 * printer puts {@link DICT_SEPARATOR} between blocks. Other responses give "".
 */
export function formatDict(resp: GetFlowsResponse, opts: CompactOptions = {}): string {
  const layout = layoutOf(opts);
  const time = formatTimestamp(
    resp.responseTypes.case === "flow" ? resp.responseTypes.value.time : resp.time,
    layout,
  );
  const lines = [`  TIMESTAMP: ${time}`];
  const r = resp.responseTypes;
  switch (r.case) {
    case "flow": {
      const flow = r.value;
      if (opts.nodeName) lines.push(`       NODE: ${flow.nodeName}`);
      const [src, dst] = flowHosts(flow, opts);
      lines.push(
        `     SOURCE: ${src}`,
        `DESTINATION: ${dst}`,
        `       TYPE: ${flowTypeText(flow)}`,
        `    VERDICT: ${flowVerdict(flow, opts)}`,
        `    SUMMARY: ${flowSummary(flow, opts)}`,
      );
      break;
    }
    case "lostEvents":
      if (opts.nodeName) lines.push(`       NODE: ${resp.nodeName === "" ? "-" : resp.nodeName}`);
      lines.push(
        `     SOURCE: ${lostSource(r.value)}`,
        "       TYPE: EVENTS LOST",
        "    VERDICT: -",
        `    SUMMARY: ${lostSummary(r.value, layout, " - ")}`,
      );
      break;
    case "nodeStatus":
      lines.push(
        `      STATE: ${NodeState[r.value.stateChange] ?? r.value.stateChange}`,
        `      NODES: ${nodeStatusNames(r.value)}`,
        `    MESSAGE: ${r.value.message === "" ? "N/A" : JSON.stringify(r.value.message)}`,
      );
      break;
    default:
      return "";
  }
  return escapeTerminal(lines.join("\n"), opts.color);
}
