import { flowPorts } from "../ports.ts";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/** Parse decimal port strings (0-65535) like Go's strconv.ParseUint(s, 10, 16). */
export function parsePorts(field: string, values: readonly string[]): Set<number> {
  const ports = new Set<number>();
  for (const value of values) {
    const n = /^[0-9]{1,5}$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= 0 && n <= 65535)) {
      throw new FilterError(field, `invalid port ${JSON.stringify(value)}: want 0-65535`);
    }
    ports.add(n);
  }
  return ports;
}

/** source_port, destination_port: TCP, UDP or SCTP ports. */
export const portFilter: FilterBuilder = {
  fields: ["source_port", "destination_port"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourcePort.length > 0) {
      const ports = parsePorts("source_port", ff.sourcePort);
      out.push((flow) => {
        const p = flowPorts(flow);
        return p !== undefined && ports.has(p.source);
      });
    }
    if (ff.destinationPort.length > 0) {
      const ports = parsePorts("destination_port", ff.destinationPort);
      out.push((flow) => {
        const p = flowPorts(flow);
        return p !== undefined && ports.has(p.destination);
      });
    }
    return out;
  },
};
