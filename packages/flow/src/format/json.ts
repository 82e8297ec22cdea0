import { createRegistry, type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type GetFlowsResponse, GetFlowsResponseSchema, processV1 } from "@periscope/proto";

/** Messages a flow's `extensions` (google.protobuf.Any) may hold, for their JSON form. */
const EXTENSIONS = createRegistry(processV1.file_periscope_process_v1_process);

/** Go's json.Encoder escapes these (HTML-safe output); hubble's JSON lines carry them so. */
const GO_ESCAPES: Readonly<Record<string, string>> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * One line of JSON for any message as hubble writes it: protojson with proto field names,
 * compacted, `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's json.Encoder does; no
 * trailing newline.
 */
export function formatMessageJson<Desc extends DescMessage>(
  schema: Desc,
  msg: MessageShape<Desc>,
): string {
  return JSON.stringify(
    toJson(schema, msg, { useProtoFieldName: true, registry: EXTENSIONS }),
  ).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? c);
}

/**
 * One line of JSON for a GetFlowsResponse with proto field names, like
 * `hubble observe -o json` / `-o jsonpb` (the whole response); no trailing newline.
 */
export function formatJson(resp: GetFlowsResponse): string {
  return formatMessageJson(GetFlowsResponseSchema, resp);
}
