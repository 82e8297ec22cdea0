import type { GetFlowsResponse } from "@periscope/proto";
import {
  type CompactOptions,
  flowHosts,
  flowSummary,
  flowVerdict,
  layoutOf,
  lostSource,
  lostSummary,
} from "./compact.ts";
import { flowTypeText } from "./flow-type.ts";
import { escapeTerminal } from "./style.ts";
import { formatTimestamp } from "./time.ts";

/** Header cells of hubble observe's `-o table` (NODE with `nodeName`). */
export function tableHeader(opts: CompactOptions = {}): string[] {
  return [
    "TIMESTAMP",
    ...(opts.nodeName ? ["NODE"] : []),
    "SOURCE",
    "DESTINATION",
    "TYPE",
    "VERDICT",
    "SUMMARY",
  ];
}

/**
 * One row of hubble observe's `-o table` for a flow or lost event (undefined for other
 * responses). Tables are never colored.
 */
export function tableRow(resp: GetFlowsResponse, opts: CompactOptions = {}): string[] | undefined {
  const plain = { ...opts, color: false };
  const layout = layoutOf(opts);
  const r = resp.responseTypes;
  let cells: string[];
  if (r.case === "flow") {
    const flow = r.value;
    const [src, dst] = flowHosts(flow, plain);
    cells = [
      formatTimestamp(flow.time, layout),
      ...(opts.nodeName ? [flow.nodeName] : []),
      src,
      dst,
      flowTypeText(flow),
      flowVerdict(flow, plain),
      flowSummary(flow, plain),
    ];
  } else if (r.case === "lostEvents") {
    cells = [
      formatTimestamp(resp.time, layout),
      ...(opts.nodeName ? [resp.nodeName === "" ? "-" : resp.nodeName] : []),
      lostSource(r.value),
      "-",
      "EVENTS LOST",
      "-",
      lostSummary(r.value, layout, " - "),
    ];
  } else return undefined;
  return cells.map((c) => escapeTerminal(c));
}

/**
 * Aligns rows like Go's tabwriter with hubble's settings (minimum width 2, padding 3,
 * spaces): every cell but the last of a row is padded to its column's widest cell + 3.
 */
export function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length - 1; i++) {
      const w = [...(row[i] ?? "")].length;
      widths[i] = Math.max(widths[i] ?? 0, w);
    }
  }
  return rows.map((row) =>
    row
      .map((cell, i) => {
        if (i === row.length - 1) return cell;
        const width = Math.max((widths[i] ?? 0) + 3, 2);
        return cell + " ".repeat(width - [...cell].length);
      })
      .join(""),
  );
}
