/**
 * Cilium monitor message types (pkg/monitor/api MessageType*), as carried in
 * flow.event_type.type and in the type byte of Periscope's kernel records.
 */
export const MESSAGE_TYPE = {
  DROP: 1,
  DEBUG: 2,
  CAPTURE: 3,
  TRACE: 4,
  POLICY_VERDICT: 5,
  RECORDER_CAPTURE: 6,
  TRACE_SOCK: 7,
  L7: 129,
  AGENT: 130,
} as const;

/** A {@link MESSAGE_TYPE} value. */
export type MessageType = (typeof MESSAGE_TYPE)[keyof typeof MESSAGE_TYPE];

/** Message types by the name hubble's `--type` flag takes. */
export const MESSAGE_TYPE_BY_NAME: Readonly<Record<string, MessageType>> = {
  drop: MESSAGE_TYPE.DROP,
  debug: MESSAGE_TYPE.DEBUG,
  capture: MESSAGE_TYPE.CAPTURE,
  trace: MESSAGE_TYPE.TRACE,
  "policy-verdict": MESSAGE_TYPE.POLICY_VERDICT,
  "recorder-capture": MESSAGE_TYPE.RECORDER_CAPTURE,
  "trace-sock": MESSAGE_TYPE.TRACE_SOCK,
  l7: MESSAGE_TYPE.L7,
  agent: MESSAGE_TYPE.AGENT,
};

/** The message type named `name` in {@link MESSAGE_TYPE_BY_NAME}; undefined for other names. */
export function messageTypeByName(name: string): MessageType | undefined {
  return Object.hasOwn(MESSAGE_TYPE_BY_NAME, name) ? MESSAGE_TYPE_BY_NAME[name] : undefined;
}
