import {
  create,
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { reflectionV1, reflectionV1alpha } from "@periscope/proto";

/**
 * gRPC server reflection (https://github.com/grpc/grpc/blob/master/doc/server-reflection.md),
 * both `grpc.reflection.v1` and the older `grpc.reflection.v1alpha`, so `grpcurl list` /
 * `describe` and other reflection clients work without local .proto files. Hubble's server
 * registers reflection too.
 */
export const ReflectionServiceV1 = reflectionV1.ServerReflection;
/** The `grpc.reflection.v1alpha` twin of {@link ReflectionServiceV1}. */
export const ReflectionServiceV1alpha = reflectionV1alpha.ServerReflection;

/** A reflection request's question, common to v1 and v1alpha. */
export type ReflectionQuestion =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** A reflection response's answer, common to v1 and v1alpha. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Every descriptor reachable from a set of files, by the names reflection clients ask for.
 * Files carry what protoc-gen-es embeds: no source info and json_name only where it differs
 * from the default, which reflection clients (grpcurl, grpc-js) accept.
 */
export class DescriptorIndex {
  /** Fully-qualified service names, sorted. */
  readonly services: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions = new Map<string, DescFile>();
  private readonly extensionNumbers = new Map<string, number[]>();
  private readonly messages = new Set<string>();
  private readonly encoded = new Map<string, Uint8Array>();

  /** Indexes `files` and, transitively, everything they import. */
  constructor(files: Iterable<DescFile>, services: Iterable<string>) {
    for (const file of files) this.addFile(file);
    this.services = [...new Set(services)].sort();
  }

  /** The file named `name` as given to protoc (e.g. "flow/flow.proto"). */
  file(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /** The file defining a service, method, message, field, oneof, enum, enum value or extension. */
  fileOfSymbol(name: string): DescFile | undefined {
    return this.symbols.get(name.startsWith(".") ? name.slice(1) : name);
  }

  /** The file defining extension `number` of message `extendee`. */
  fileOfExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(`${extendee}#${number}`);
  }

  /** Extension numbers of a known message type (often empty); undefined for unknown types. */
  extensionNumbersOf(typeName: string): number[] | undefined {
    if (!this.messages.has(typeName)) return undefined;
    return [...(this.extensionNumbers.get(typeName) ?? [])].sort((a, b) => a - b);
  }

  /**
   * Serialized FileDescriptorProtos of `file` and its transitive imports, the requested file
   * first. Imports already in `sent` are left out (the client has them from earlier on the
   * same stream, as grpc-go does); every file returned is added to `sent`.
   */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue = [file];
    for (let cur = queue.shift(); cur !== undefined; cur = queue.shift()) {
      const name = cur.proto.name;
      if (out.length === 0 || !sent.has(name)) {
        sent.add(name);
        out.push(this.encode(cur));
      }
      queue.push(...cur.dependencies);
    }
    return out;
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    const pkg = file.proto.package;
    for (const svc of file.services) {
      this.symbols.set(svc.typeName, file);
      for (const m of svc.methods) this.symbols.set(`${svc.typeName}.${m.name}`, file);
    }
    for (const msg of file.messages) this.addMessage(file, msg);
    for (const en of file.enums) this.addEnum(file, en, pkg);
    for (const ext of file.extensions) this.addExtension(file, ext);
  }

  private addMessage(file: DescFile, msg: DescMessage): void {
    this.symbols.set(msg.typeName, file);
    this.messages.add(msg.typeName);
    for (const f of msg.fields) this.symbols.set(`${msg.typeName}.${f.name}`, file);
    for (const o of msg.oneofs) this.symbols.set(`${msg.typeName}.${o.name}`, file);
    for (const nested of msg.nestedMessages) this.addMessage(file, nested);
    for (const en of msg.nestedEnums) this.addEnum(file, en, msg.typeName);
    for (const ext of msg.nestedExtensions) this.addExtension(file, ext);
  }

  /** Enum values live in the scope around their enum (protobuf's C++ scoping rules). */
  private addEnum(file: DescFile, en: DescEnum, scope: string): void {
    this.symbols.set(en.typeName, file);
    for (const v of en.values) this.symbols.set(scope ? `${scope}.${v.name}` : v.name, file);
  }

  private addExtension(file: DescFile, ext: DescExtension): void {
    this.symbols.set(ext.typeName, file);
    const extendee = ext.extendee.typeName;
    this.extensions.set(`${extendee}#${ext.number}`, file);
    const numbers = this.extensionNumbers.get(extendee) ?? [];
    numbers.push(ext.number);
    this.extensionNumbers.set(extendee, numbers);
  }
}

function notFound(what: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: what } };
}

/** Answers one reflection question; `sent` tracks the files already sent on this stream. */
export function answerReflection(
  index: DescriptorIndex,
  question: ReflectionQuestion,
  sent: Set<string>,
): ReflectionAnswer {
  const files = (file: DescFile | undefined, what: string): ReflectionAnswer =>
    file === undefined
      ? notFound(what)
      : {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: index.withDependencies(file, sent) },
        };
  switch (question.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.file(question.value), `file not found: ${question.value}`);
    case "fileContainingSymbol":
      return files(index.fileOfSymbol(question.value), `symbol not found: ${question.value}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = question.value;
      return files(
        index.fileOfExtension(containingType, extensionNumber),
        `extension not found: ${containingType}, ${extensionNumber}`,
      );
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(question.value);
      return numbers === undefined
        ? notFound(`type not found: ${question.value}`)
        : {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: question.value, extensionNumber: numbers },
          };
    }
    case undefined:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
      };
  }
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and its v1alpha twin on `router`. Register
 * it after the other services: the services it lists and describes are those on the router
 * when the first reflection request arrives (the reflection services included).
 */
export function reflectionRoutes(): (router: ConnectRouter) => void {
  return (router) => {
    let index: DescriptorIndex | undefined;
    const getIndex = (): DescriptorIndex => {
      if (index === undefined) {
        const services = router.handlers.map((h) => h.service);
        index = new DescriptorIndex(
          services.map((s) => s.file),
          services.map((s) => s.typeName),
        );
      }
      return index;
    };
    router.service(ReflectionServiceV1, {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) {
          const answer = answerReflection(getIndex(), req.messageRequest, sent);
          yield create(reflectionV1.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer,
          });
        }
      },
    });
    router.service(ReflectionServiceV1alpha, {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const req of requests) {
          const answer = answerReflection(getIndex(), req.messageRequest, sent);
          yield create(reflectionV1alpha.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer,
          });
        }
      },
    });
  };
}
