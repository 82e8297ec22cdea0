/**
 * `observe --input-file`: GetFlowsResponse JSON lines (what `-o jsonpb` prints) read from a
 * file or stdin instead of a server, with the request's filters, since/until and
 * first/last applied as hubble's file reader applies them.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { fromJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { compileFilters, FilterError } from "@periscope/flow";
import {
  type GetFlowsRequest,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
} from "@periscope/proto";
import { UsageError } from "./args.ts";

const ALL = 0xffff_ffff_ffff_ffffn;

/** Hubble's limit on `--last` over a file (the last N are kept in memory). */
export const MAX_FILE_LAST = 1_000_000n;

/**
 * Reads `path` ("-" = `stdin`) line by line and yields the responses `request` selects.
 * Lines that are not a GetFlowsResponse are reported through `warn` (with their line
 * number) and skipped; unknown fields are ignored.
 */
export async function* readFlowsFile(
  path: string,
  request: GetFlowsRequest,
  warn: (line: string) => void,
  stdin: NodeJS.ReadableStream = process.stdin,
): AsyncGenerator<GetFlowsResponse> {
  let pass: (resp: GetFlowsResponse) => boolean;
  try {
    const filter = compileFilters(request.whitelist, request.blacklist);
    pass = (resp) => resp.responseTypes.case !== "flow" || filter(resp.responseTypes.value);
  } catch (e) {
    if (e instanceof FilterError) throw new UsageError(`invalid filter: ${e.message}`);
    throw e;
  }
  const n = request.number;
  const keepLast = !request.first && n !== 0n && n !== ALL;
  if (keepLast && n > MAX_FILE_LAST) throw new UsageError(`--last must be <= 1_000_000, got ${n}`);
  const sinceMs = request.since ? timestampMs(request.since) : undefined;
  const untilMs = request.until ? timestampMs(request.until) : undefined;
  const input: NodeJS.ReadableStream = path === "-" ? stdin : createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    if (path === "-") resolve();
    input.once("error", (e: NodeJS.ErrnoException) =>
      reject(new UsageError(`cannot read --input-file ${path}: ${e.code ?? e.message}`)),
    );
    input.once("readable", () => resolve());
    input.once("end", () => resolve());
  });
  await opened;
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const last: GetFlowsResponse[] = [];
  let head = 0;
  let returned = 0n;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === "") continue;
    let resp: GetFlowsResponse;
    try {
      resp = fromJson(GetFlowsResponseSchema, JSON.parse(line), { ignoreUnknownFields: true });
    } catch (e) {
      warn(`line ${lineNo}: not a GetFlowsResponse: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    const t = resp.time ? timestampMs(resp.time) : 0;
    if (sinceMs !== undefined && sinceMs > t) continue;
    if (untilMs !== undefined && untilMs < t) continue;
    if (!pass(resp)) continue;
    if (keepLast) {
      if (BigInt(last.length) < n) last.push(resp);
      else {
        last[head] = resp;
        head = (head + 1) % last.length;
      }
      continue;
    }
    yield resp;
    returned++;
    if (request.first && n !== 0n && n !== ALL && returned >= n) {
      lines.close();
      return;
    }
  }
  yield* last.slice(head);
  yield* last.slice(0, head);
}
