/**
 * Cilium trace sub-types (monitor TRACE_TO_LXC ... TRACE_TO_CRYPTO): where a
 * packet was observed. Periscope's trace records carry one in their subtype
 * byte; tc ingress is FROM_NETWORK, tc egress TO_NETWORK.
 */
export const TRACE_SUBTYPE = {
  TO_ENDPOINT: 0,
  TO_PROXY: 1,
  TO_HOST: 2,
  TO_STACK: 3,
  TO_OVERLAY: 4,
  FROM_ENDPOINT: 5,
  FROM_PROXY: 6,
  FROM_HOST: 7,
  FROM_STACK: 8,
  FROM_OVERLAY: 9,
  FROM_NETWORK: 10,
  TO_NETWORK: 11,
  FROM_CRYPTO: 12,
  TO_CRYPTO: 13,
} as const;

/** A {@link TRACE_SUBTYPE} value. */
export type TraceSubtype = (typeof TRACE_SUBTYPE)[keyof typeof TRACE_SUBTYPE];

/**
 * Trace sub-types by the name hubble prints in its compact TYPE column and
 * takes in `--type trace:<name>` ("to-network", "from-endpoint", ...).
 */
export const TRACE_SUBTYPE_BY_NAME: Readonly<Record<string, TraceSubtype>> = Object.fromEntries(
  Object.entries(TRACE_SUBTYPE).map(([key, value]) => [key.toLowerCase().replace("_", "-"), value]),
);

const NAMES: readonly string[] = Object.entries(TRACE_SUBTYPE_BY_NAME)
  .sort((a, b) => a[1] - b[1])
  .map(([name]) => name);

/** The trace sub-type named `name` ("to-network"); undefined for other names. */
export function traceSubtypeByName(name: string): TraceSubtype | undefined {
  return Object.hasOwn(TRACE_SUBTYPE_BY_NAME, name) ? TRACE_SUBTYPE_BY_NAME[name] : undefined;
}

/** Name of a trace sub-type ("to-network"); the number as text for unknown ones. */
export function traceSubtypeName(subtype: number): string {
  return NAMES[subtype] ?? String(subtype);
}
