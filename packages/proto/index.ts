/**
 * Generated protobuf code of Periscope (protoc-gen-es v2, see buf.gen.yaml).
 *
 * Build messages with `create(XSchema, init)` and (de)serialise with
 * `toBinary` / `fromBinary` / `toJson` from `@bufbuild/protobuf`.
 *
 * - `flow`, `observer`, `relay`: Hubble-compatible API (`FlowSchema`,
 *   `GetFlowsRequestSchema`, the `Observer` service, `NodeStatusEvent`, ...).
 * - `peer`: Hubble peer discovery; its `TLS` message is exported as
 *   `PeerTLS` / `PeerTLSSchema` because `observer` has a `TLS` message too.
 * - `grpc.health.v1` (`Health`) and gRPC server reflection, the latter as the
 *   namespaces `reflectionV1` and `reflectionV1alpha` (the two versions share
 *   every name, e.g. `reflectionV1.ServerReflection`).
 * - `periscope.raw.v1` (`RawFrameSchema`) and `periscope.bus.v1`
 *   (`FlowBatchSchema`): Periscope's own bus payloads; `netflowV1`
 *   (`netflowV1.NetflowRecordsSchema`): flow records of the flow export.
 * - `compileEncoder(schema)`: a schema-specialised encoder producing the
 *   same bytes as `toBinary`, several times faster (hot paths).
 */

export { compileEncoder, EncodeError } from "./encoder.ts";
export * from "./src/gen/flow/flow_pb.ts";
export * from "./src/gen/grpc/health/v1/health_pb.ts";
export * as reflectionV1 from "./src/gen/grpc/reflection/v1/reflection_pb.ts";
export * as reflectionV1alpha from "./src/gen/grpc/reflection/v1alpha/reflection_pb.ts";
export * from "./src/gen/observer/observer_pb.ts";
export {
  type ChangeNotification,
  ChangeNotificationSchema,
  ChangeNotificationType,
  ChangeNotificationTypeSchema,
  file_peer_peer,
  type NotifyRequest,
  NotifyRequestSchema,
  Peer,
  type TLS as PeerTLS,
  TLSSchema as PeerTLSSchema,
} from "./src/gen/peer/peer_pb.ts";
export * from "./src/gen/periscope/bus/v1/bus_pb.ts";
/** `periscope.flowstats.v1`: bytes and packets per connection from the flow records (observer). */
export * as flowstatsV1 from "./src/gen/periscope/flowstats/v1/flowstats_pb.ts";
/** `periscope.netflow.v1`: flow records on `periscope.netflows.<node>` (names overlap `flow`'s). */
export * as netflowV1 from "./src/gen/periscope/netflow/v1/netflow_pb.ts";
/** `periscope.process.v1`: the process and container of a flow, in `Flow.extensions`. */
export * as processV1 from "./src/gen/periscope/process/v1/process_pb.ts";
export * from "./src/gen/periscope/raw/v1/raw_pb.ts";
/** `periscope.telemetry.v1`: Telemetry/Subscribe, filtered process, container, flow and drop events. */
export * as telemetryV1 from "./src/gen/periscope/telemetry/v1/telemetry_pb.ts";
/** Hubble's `recorder` package (`recorder.Recorder/Record`), as a namespace: its names are generic. */
export * as recorder from "./src/gen/recorder/recorder_pb.ts";
export * from "./src/gen/relay/relay_pb.ts";
