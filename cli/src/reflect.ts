import { create, fromBinary, toJson } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { reflectionV1 } from "@periscope/proto";
import { describeRpcError } from "./client.ts";
import { observerTransport } from "./connection.ts";

type Request = reflectionV1.ServerReflectionRequest;
type Response = reflectionV1.ServerReflectionResponse;

/** Services `reflect` leaves out, as hubble does. */
const SKIPPED = new Set(["grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"]);

/** A request queue feeding one bidirectional stream. */
class Requests implements AsyncIterable<Request> {
  readonly #queue: Request[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  push(r: Request): void {
    this.#queue.push(r);
    this.#wake?.();
  }
  end(): void {
    this.#done = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Request> {
    for (;;) {
      const next = this.#queue.shift();
      if (next) yield next;
      else if (this.#done) return;
      else
        await new Promise<void>((r) => {
          this.#wake = r;
        });
    }
  }
}

/**
 * Runs `reflect`: asks the server's gRPC reflection for its services and prints every
 * file descriptor they need (dependencies included, each once) as one JSON line.
 */
export async function runReflect(
  server: string,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
): Promise<number> {
  const requests = new Requests();
  const client = createClient(reflectionV1.ServerReflection, observerTransport(server));
  const responses = client.serverReflectionInfo(requests, { signal })[Symbol.asyncIterator]();
  const ask = async (messageRequest: Request["messageRequest"]): Promise<Response> => {
    requests.push(create(reflectionV1.ServerReflectionRequestSchema, { messageRequest }));
    const r = await responses.next();
    if (r.done) throw new Error("the server ended the reflection stream");
    if (r.value.messageResponse.case === "errorResponse")
      throw new Error(r.value.messageResponse.value.errorMessage);
    return r.value;
  };
  const visited = new Set<string>();
  const print = async (files: readonly Uint8Array[]): Promise<void> => {
    for (const bytes of files) {
      const desc: FileDescriptorProto = fromBinary(FileDescriptorProtoSchema, bytes);
      if (visited.has(desc.name)) continue;
      visited.add(desc.name);
      out(JSON.stringify(toJson(FileDescriptorProtoSchema, desc, { useProtoFieldName: true })));
      for (const dep of desc.dependency) {
        if (visited.has(dep)) continue;
        const res = await ask({ case: "fileByFilename", value: dep });
        if (res.messageResponse.case === "fileDescriptorResponse")
          await print(res.messageResponse.value.fileDescriptorProto);
      }
    }
  };
  try {
    const list = await ask({ case: "listServices", value: "" });
    if (list.messageResponse.case !== "listServicesResponse")
      throw new Error(`unexpected response: ${list.messageResponse.case}`);
    for (const svc of list.messageResponse.value.service) {
      if (SKIPPED.has(svc.name)) continue;
      const res = await ask({ case: "fileContainingSymbol", value: svc.name });
      if (res.messageResponse.case !== "fileDescriptorResponse")
        throw new Error(`unexpected response: ${res.messageResponse.case}`);
      await print(res.messageResponse.value.fileDescriptorProto);
    }
    return 0;
  } catch (e) {
    err(`periscope: reflect (via ${server}): ${describeRpcError(e)}`);
    return 1;
  } finally {
    requests.end();
    await responses.return?.();
  }
}
