import { toJson } from "@bufbuild/protobuf";
import { type GetFlowsResponse, GetFlowsResponseSchema } from "@periscope/proto";

/**
 * One line of JSON for a GetFlowsResponse with proto field names, like
 * `hubble observe -o json` (protojson with UseProtoNames); no trailing newline.
 */
export function formatJson(resp: GetFlowsResponse): string {
  return JSON.stringify(toJson(GetFlowsResponseSchema, resp, { useProtoFieldName: true }));
}
