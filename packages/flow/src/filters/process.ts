import { fromBinary } from "@bufbuild/protobuf";
import { type Flow, processV1 } from "@periscope/proto";

/** Type URL of the Process a flow carries in `Flow.extensions`. */
export const PROCESS_EXTENSION_TYPE_URL = "type.googleapis.com/periscope.process.v1.Process";

const decoded = new WeakMap<object, processV1.Process | null>();

/**
 * The `periscope.process.v1.Process` in `flow.extensions`, undefined when the flow carries
 * none (or another type, or bytes that do not decode). Decoded once per Any message.
 */
export function flowProcess(flow: Flow): processV1.Process | undefined {
  const any = flow.extensions;
  if (any === undefined || any.typeUrl !== PROCESS_EXTENSION_TYPE_URL) return undefined;
  let p = decoded.get(any);
  if (p === undefined) {
    try {
      p = fromBinary(processV1.ProcessSchema, any.value);
    } catch {
      p = null;
    }
    decoded.set(any, p);
  }
  return p ?? undefined;
}

/** "curl[4242]" or "curl[4242] in web-1" (container name, else its short id); "" without a process. */
export function processText(flow: Flow): string {
  const p = flowProcess(flow);
  if (p === undefined) return "";
  const name = p.comm || p.binary.slice(p.binary.lastIndexOf("/") + 1);
  const c = p.container;
  const where = c === undefined || c.runtime === "systemd" ? "" : c.name || c.id.slice(0, 12);
  return where === "" ? `${name}[${p.tgid}]` : `${name}[${p.tgid}] in ${where}`;
}

/** Process flags of `periscope observe`, each a condition on the flow's Process. */
export type ProcessFlag = "pid" | "comm" | "binary" | "container" | "container-image" | "uid";

const P = "_flow.extensions";

/** A CEL string literal. */
function lit(v: string): string {
  return JSON.stringify(v);
}

/** A non-negative integer flag value, as a CEL uint literal. */
function uintLit(flag: ProcessFlag, v: string): string {
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) {
    throw new Error(`--${flag}: "${v}" is not a number between 0 and 4294967295`);
  }
  return `${Number(v)}u`;
}

/**
 * The CEL condition (on `_flow`) of one process flag value: `--pid` the process or thread id,
 * `--comm` the command name, `--binary` the executable path (a name without "/" matches the
 * last path element), `--container` the container name or an id prefix, `--container-image`
 * the image (a trailing "*" matches a prefix), `--uid` the real uid.
 * @throws Error naming the flag when a number does not parse.
 */
export function processCondition(flag: ProcessFlag, v: string): string {
  switch (flag) {
    case "pid": {
      const n = uintLit(flag, v);
      return `(${P}.tgid == ${n} || ${P}.pid == ${n})`;
    }
    case "uid":
      return `${P}.uid == ${uintLit(flag, v)}`;
    case "comm":
      return `${P}.comm == ${lit(v)}`;
    case "binary":
      return v.includes("/") ? `${P}.binary == ${lit(v)}` : `${P}.binary.endsWith(${lit(`/${v}`)})`;
    case "container":
      return `(${P}.container.name == ${lit(v)} || (${lit(v)} != "" && ${P}.container.id.startsWith(${lit(v)})))`;
    case "container-image":
      return v.endsWith("*")
        ? `${P}.container.image.startsWith(${lit(v.slice(0, -1))})`
        : `${P}.container.image == ${lit(v)}`;
  }
}

/** Per filter: the process conditions by flag and the slot of their expression. */
const conditions = new WeakMap<object, { byFlag: Map<ProcessFlag, string[]>; slot: number }>();

/**
 * Adds one process flag value to `filter` as one CEL expression in
 * `experimental.cel_expression`: values of one flag are ORed, different flags ANDed
 * (the expression is rebuilt in place as flags are added).
 */
export function addProcessCondition(
  filter: { experimental?: { celExpression: string[] } },
  flag: ProcessFlag,
  v: string,
  makeExperimental: () => { celExpression: string[] },
): void {
  const cond = processCondition(flag, v);
  filter.experimental ??= makeExperimental();
  const list = filter.experimental.celExpression;
  let state = conditions.get(filter);
  if (state === undefined || list[state.slot] === undefined) {
    state = { byFlag: new Map(), slot: list.length };
    list.push("");
    conditions.set(filter, state);
  }
  const same = state.byFlag.get(flag) ?? [];
  same.push(cond);
  state.byFlag.set(flag, same);
  list[state.slot] = [...state.byFlag.values()].map((c) => `(${c.join(" || ")})`).join(" && ");
}
