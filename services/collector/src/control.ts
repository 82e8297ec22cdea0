/**
 * Run-time control of the trace program's settings: the collector answers
 * NATS requests on `periscope.ctl.<node>.settings` with a JSON body
 * `{aggregation?, aggregationIntervalMs?, captureRules?, debug?}` (captureRules as
 * `"udp/53=512"` strings or `{proto, port, len}` objects; `{}` only asks) and
 * replies with the settings in force, or `{error}` naming the bad field.
 */

type NatsConnection = Bus["nc"];

import {
  AGGREGATION_LEVELS,
  type AggregationLevel,
  type CaptureRule,
  formatCaptureRule,
  parseCaptureRule,
  SettingsError,
  type TraceSettings,
} from "@periscope/bpf";
import { type Bus, subjects } from "@periscope/bus";
import type { Logger } from "@periscope/telemetry";

/** What the control needs from the loaded trace program. */
export interface SettingsTarget {
  setSettings(update: Partial<TraceSettings>): TraceSettings;
}

/** Settings as requests and replies spell them. */
export interface SettingsMessage {
  aggregation: AggregationLevel;
  aggregationIntervalMs: number;
  captureRules: string[];
  debug: boolean;
}

/** The reply body for settings in force. */
export function settingsMessage(s: TraceSettings): SettingsMessage {
  return {
    aggregation: s.aggregation,
    aggregationIntervalMs: s.reportIntervalMs,
    captureRules: s.captureRules.map(formatCaptureRule),
    debug: s.debug,
  };
}

const FIELDS = new Set(["aggregation", "aggregationIntervalMs", "captureRules", "debug"]);

function captureRule(v: unknown, i: number): CaptureRule {
  if (typeof v === "string") {
    try {
      return parseCaptureRule(v);
    } catch (err) {
      if (err instanceof SettingsError) throw new SettingsError(`captureRules[${i}]`, err.detail);
      throw err;
    }
  }
  if (typeof v === "object" && v !== null) {
    const r = v as Record<string, unknown>;
    const num = (k: string, fallback?: number): number => {
      const x = r[k] ?? fallback;
      if (typeof x !== "number")
        throw new SettingsError(`captureRules[${i}].${k}`, "must be a number");
      return x;
    };
    return { proto: num("proto", 0), port: num("port", 0), len: num("len") };
  }
  throw new SettingsError(
    `captureRules[${i}]`,
    'must be "<proto>[/<port>]=<len>" or {proto, port, len}',
  );
}

/**
 * Parses a settings request body into an update.
 * @throws SettingsError naming the bad field (unknown fields included).
 */
export function parseSettingsRequest(body: Uint8Array): Partial<TraceSettings> {
  let json: unknown;
  try {
    json = body.length === 0 ? {} : JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new SettingsError("body", "is not JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SettingsError("body", "must be a JSON object");
  }
  const req = json as Record<string, unknown>;
  for (const k of Object.keys(req)) {
    if (!FIELDS.has(k)) throw new SettingsError(k, "unknown field");
  }
  const out: Partial<TraceSettings> = {};
  if (req.aggregation !== undefined) {
    const level = AGGREGATION_LEVELS.find((l) => l === req.aggregation);
    if (level === undefined) {
      throw new SettingsError("aggregation", `must be one of ${AGGREGATION_LEVELS.join(", ")}`);
    }
    out.aggregation = level;
  }
  if (req.aggregationIntervalMs !== undefined) {
    const ms = req.aggregationIntervalMs;
    if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0 || ms > 0xffffffff) {
      throw new SettingsError("aggregationIntervalMs", "must be an integer 0..4294967295");
    }
    out.reportIntervalMs = ms;
  }
  if (req.captureRules !== undefined) {
    if (!Array.isArray(req.captureRules)) throw new SettingsError("captureRules", "must be a list");
    out.captureRules = req.captureRules.map(captureRule);
  }
  if (req.debug !== undefined) {
    if (typeof req.debug !== "boolean") throw new SettingsError("debug", "must be true or false");
    out.debug = req.debug;
  }
  return out;
}

/**
 * Answers one request: applies it to `target` and returns the reply body, or an
 * `{error}` body for a bad request (`onBad` is called with the field).
 */
export function handleSettingsRequest(
  target: SettingsTarget,
  body: Uint8Array,
  onBad?: (field: string) => void,
): SettingsMessage | { error: string } {
  try {
    const update = parseSettingsRequest(body);
    // The program validates the merged settings again (e.g. more than 8 rules).
    return settingsMessage(target.setSettings(update));
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    onBad?.(err.field);
    return { error: err.message };
  }
}

/** Options for {@link startSettingsControl}. */
export interface SettingsControlOptions {
  nc: NatsConnection;
  node: string;
  target: SettingsTarget;
  log: Logger;
  /** A refused request, by field. */
  onBad?: (field: string) => void;
  /** Settings changed by a request. */
  onChange?: (s: SettingsMessage) => void;
}

/** Subscribes to `periscope.ctl.<node>.settings`; `stop()` unsubscribes. */
export function startSettingsControl(o: SettingsControlOptions): { stop(): void } {
  const sub = o.nc.subscribe(subjects.ctl(o.node, "settings"), {
    callback: (err, msg) => {
      if (err) {
        o.log.error({ err }, "settings control subscription failed");
        return;
      }
      let reply: SettingsMessage | { error: string };
      try {
        reply = handleSettingsRequest(o.target, msg.data, o.onBad);
      } catch (e) {
        o.log.error({ err: e }, "applying settings failed");
        reply = {
          error: `applying settings failed: ${e instanceof Error ? e.message : String(e)}`,
        };
      }
      if ("error" in reply) o.log.warn({ error: reply.error }, "settings request refused");
      else if (msg.data.length > 0 && new TextDecoder().decode(msg.data).trim() !== "{}") {
        o.log.info({ settings: reply }, "settings changed");
        o.onChange?.(reply);
      }
      if (msg.reply) msg.respond(new TextEncoder().encode(JSON.stringify(reply)));
    },
  });
  return {
    stop() {
      if (!sub.isClosed()) sub.unsubscribe();
    },
  };
}
