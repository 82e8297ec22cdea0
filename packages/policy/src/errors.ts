/** Where in a policy a problem was found. */
export interface PolicyErrorLocation {
  /** Policy name, when known. */
  readonly policy?: string;
  /** Rule position (0-based) in the policy's `rules`. */
  readonly ruleIndex?: number;
  /** Rule name, when the rule has a usable one. */
  readonly rule?: string;
  /** Field name, e.g. "ports" or "peers[1]". */
  readonly field?: string;
}

/**
 * A policy that cannot be used. The message names the policy, the rule (position and
 * name) and the field that is wrong; the same parts are kept as properties.
 */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  readonly location: PolicyErrorLocation;

  constructor(location: PolicyErrorLocation, problem: string, options?: { cause?: unknown }) {
    super(`${describeLocation(location)}${problem}`, options);
    this.location = location;
  }
}

function describeLocation(l: PolicyErrorLocation): string {
  const parts: string[] = [];
  if (l.policy !== undefined) parts.push(`policy "${l.policy}"`);
  if (l.ruleIndex !== undefined) {
    parts.push(`rule ${l.ruleIndex + 1}${l.rule !== undefined ? ` ("${l.rule}")` : ""}`);
  }
  if (l.field !== undefined) parts.push(`field "${l.field}"`);
  return parts.length > 0 ? `${parts.join(", ")}: ` : "";
}
