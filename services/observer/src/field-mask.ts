import { create, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Flow,
  FlowSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
} from "@periscope/proto";
import type { StoredEvent } from "./event.ts";

/** A field mask path that does not name a field of flow.Flow; InvalidArgument at the RPC edge. */
export class FieldMaskError extends Error {
  override readonly name = "FieldMaskError";
  constructor(readonly path: string) {
    super(`field_mask: invalid path "${path}" for flow.Flow`);
  }
}

/** Mask paths as a tree: `true` keeps the whole field, a map keeps only its sub-paths. */
type MaskTree = Map<DescField, MaskTree | true>;

/** Copies the masked fields of `src` into `dst` (both of the same message type). */
type Copier = (src: Record<string, unknown>, dst: Record<string, unknown>) => void;

/**
 * Compiles `mask` (paths relative to flow.Flow, proto field names, e.g. `source.pod_name`,
 * `l4.TCP`, `IP`) once into a function from a flow to a new flow holding only the masked
 * fields. A path through a repeated field or a non-message field, an empty segment or an
 * unknown name throws {@link FieldMaskError} naming the path. Returns undefined for an
 * absent or empty mask: flows go out unchanged. A path covered by a shorter one is
 * redundant (`source` wins over `source.pod_name`). Returned flows share unmasked
 * sub-values with the input; neither may be mutated afterwards.
 */
export function compileFieldMask(mask: FieldMask | undefined): ((flow: Flow) => Flow) | undefined {
  if (mask === undefined || mask.paths.length === 0) return undefined;
  const root: MaskTree = new Map();
  for (const path of mask.paths) addPath(root, FlowSchema, path);
  const copy = compileTree(root);
  return (flow) => {
    const out = create(FlowSchema);
    copy(flow as unknown as Record<string, unknown>, out as unknown as Record<string, unknown>);
    return out;
  };
}

function addPath(root: MaskTree, schema: DescMessage, path: string): void {
  const names = path.split(".");
  let node = root;
  let desc = schema;
  for (let i = 0; i < names.length; i++) {
    const field = desc.fields.find((f) => f.name === names[i]);
    if (field === undefined) throw new FieldMaskError(path);
    const last = i === names.length - 1;
    if (last) {
      node.set(field, true);
      return;
    }
    if (field.fieldKind !== "message") throw new FieldMaskError(path);
    const next = node.get(field);
    if (next === true) return; // already kept whole
    const sub: MaskTree = next ?? new Map();
    node.set(field, sub);
    node = sub;
    desc = field.message;
  }
}

function compileTree(tree: MaskTree): Copier {
  const steps: Copier[] = [];
  for (const [field, sub] of tree) steps.push(compileField(field, sub));
  return (src, dst) => {
    for (const step of steps) step(src, dst);
  };
}

function compileField(field: DescField, sub: MaskTree | true): Copier {
  const subCopy =
    sub === true || field.fieldKind !== "message"
      ? undefined
      : ((schema: DescMessage, copy: Copier) => (value: unknown) => {
          const out = create(schema) as unknown as Record<string, unknown>;
          copy(value as Record<string, unknown>, out);
          return out;
        })(field.message, compileTree(sub));
  const oneof = field.oneof;
  if (oneof !== undefined) {
    const key = oneof.localName;
    const member = field.localName;
    return (src, dst) => {
      const sel = src[key] as { case: string | undefined; value?: unknown };
      if (sel.case !== member) return;
      dst[key] = subCopy ? { case: member, value: subCopy(sel.value) } : sel;
    };
  }
  const key = field.localName;
  if (subCopy === undefined) {
    return (src, dst) => {
      dst[key] = src[key];
    };
  }
  return (src, dst) => {
    const value = src[key];
    if (value !== undefined) dst[key] = subCopy(value);
  };
}

/**
 * What GetFlows sends for each stored event under GetFlowsRequest.field_mask: without a
 * mask the stored bytes as they are (no decode); with one, flows decoded and masked
 * (node_name and time of the response kept), other events unchanged. Returns undefined for
 * a flow that does not decode. A bad path throws InvalidArgument naming it.
 */
export function responseMasker(
  mask: FieldMask | undefined,
): (ev: StoredEvent) => GetFlowsResponse | undefined {
  let apply: ((flow: Flow) => Flow) | undefined;
  try {
    apply = compileFieldMask(mask);
  } catch (err) {
    if (err instanceof FieldMaskError) {
      throw new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
    }
    throw err;
  }
  if (apply === undefined) return (ev) => ev.wire();
  const maskFlow = apply;
  return (ev) => {
    if (ev.kind !== "flow") return ev.wire();
    let resp: GetFlowsResponse;
    try {
      resp = ev.resp;
    } catch {
      return undefined;
    }
    const flow = resp.responseTypes.case === "flow" ? resp.responseTypes.value : undefined;
    if (flow === undefined) return ev.wire();
    return create(GetFlowsResponseSchema, {
      nodeName: resp.nodeName,
      time: resp.time,
      responseTypes: { case: "flow", value: maskFlow(flow) },
    });
  };
}
