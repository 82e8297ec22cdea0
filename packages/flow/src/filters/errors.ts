/**
 * A FlowFilter that cannot be compiled: a bad IP/CIDR, port, protocol, label
 * selector, pattern, or a field this implementation does not filter on.
 * `field` is the FlowFilter field name as in flow.proto, e.g. "source_ip".
 */
export class FilterError extends Error {
  override readonly name = "FilterError";
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(`invalid ${field} filter: ${message}`, options);
    this.field = field;
  }
}
