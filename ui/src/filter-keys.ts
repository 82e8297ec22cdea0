/** The filter box's keys (no protobuf code: the page imports this alone). */

/** Keys the box understands, for the help text and errors. */
export const FILTER_KEYS = [
  "namespace",
  "pod",
  "from-pod",
  "to-pod",
  "label",
  "from-label",
  "to-label",
  "ip",
  "from-ip",
  "to-ip",
  "verdict",
  "protocol",
  "port",
  "from-port",
  "to-port",
  "type",
  "http-status",
  "http-method",
  "http-path",
  "dns-query",
  "node-name",
] as const;
