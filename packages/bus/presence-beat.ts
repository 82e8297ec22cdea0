import { hostname } from "node:os";
import { BusInputError } from "./errors.ts";
import { sanitizeToken } from "./subjects.ts";

/** Prefix of every presence subject. */
export const PRESENCE_PREFIX = "periscope.presence";

/** Presence subjects: `periscope.presence.<service>.<node>.<instance>` (tokens sanitized). */
export const presenceSubjects = {
  /** One instance's heartbeats. */
  one: (service: string, node: string, instance: string): string =>
    `${PRESENCE_PREFIX}.${sanitizeToken(service)}.${sanitizeToken(node)}.${sanitizeToken(instance)}`,
  /** Every heartbeat of every service. */
  all: `${PRESENCE_PREFIX}.>`,
} as const;

/**
 * What a heartbeat says: "up" every interval while running, "stopping" once when a
 * graceful stop begins (the instance is gone on purpose), "exited" when a supervisor saw
 * the process die (sent on its behalf: the instance is gone without saying goodbye).
 */
export type PresenceState = "up" | "stopping" | "exited";

/** One presence message (JSON on the wire). Times are the sender's clock, ms since the epoch. */
export interface PresenceBeat {
  readonly service: string;
  readonly node: string;
  /** Unique per process: `<host>-<pid>` ({@link presenceInstance}). */
  readonly instance: string;
  readonly host: string;
  readonly pid: number;
  readonly state: PresenceState;
  readonly startedMs: number;
  readonly sentMs: number;
  /** Heartbeat interval the sender keeps, ms: receivers judge staleness by it. */
  readonly intervalMs: number;
  /** The sender's software version, e.g. "periscope 0.1.0" (absent from older senders). */
  readonly version?: string;
}

/** The instance id of process `pid` on `host`: `<host>-<pid>`, usable as a subject token. */
export function presenceInstance(host: string = hostname(), pid: number = process.pid): string {
  return sanitizeToken(`${host}-${pid}`);
}

const STATES: readonly string[] = ["up", "stopping", "exited"];

/** Encodes a beat as the JSON bytes sent on the wire. */
export function encodeBeat(beat: PresenceBeat): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(beat));
}

/** Decodes a beat; throws {@link BusInputError} naming the missing or bad field. */
export function parseBeat(data: Uint8Array): PresenceBeat {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    throw new BusInputError("presence beat is not JSON", { cause: err });
  }
  if (typeof v !== "object" || v === null)
    throw new BusInputError("presence beat is not an object");
  const o = v as Record<string, unknown>;
  for (const f of ["service", "node", "instance", "host"] as const) {
    if (typeof o[f] !== "string" || o[f] === "") {
      throw new BusInputError(`presence beat: ${f} must be a non-empty string`);
    }
  }
  for (const f of ["pid", "startedMs", "sentMs", "intervalMs"] as const) {
    if (typeof o[f] !== "number" || !Number.isFinite(o[f]) || (o[f] as number) < 0) {
      throw new BusInputError(`presence beat: ${f} must be a non-negative number`);
    }
  }
  if (o.version !== undefined && typeof o.version !== "string") {
    throw new BusInputError("presence beat: version must be a string when present");
  }
  if (typeof o.state !== "string" || !STATES.includes(o.state)) {
    throw new BusInputError(`presence beat: state must be one of ${STATES.join(", ")}`);
  }
  return o as unknown as PresenceBeat;
}
