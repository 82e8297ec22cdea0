/**
 * recorder.Recorder on the observer's address: every Record call is forwarded, stream for
 * stream, to the recorder service (`--recorder-address`), so clients need one endpoint as
 * with Hubble. Errors of the recorder (InvalidArgument naming the field, ...) reach the
 * client unchanged; a recorder that cannot be reached is Unavailable.
 */
import { type ConnectRouter, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { recorder } from "@periscope/proto";

/** Registers the forwarding recorder.Recorder service on `router`. */
export function recorderProxyRoutes(recorderAddr: string): (router: ConnectRouter) => void {
  const client = createClient(
    recorder.Recorder,
    createGrpcTransport({ baseUrl: `http://${recorderAddr}` }),
  );
  return (router) => {
    router.service(recorder.Recorder, {
      record: (requests, ctx) => client.record(requests, { signal: ctx.signal }),
    });
  };
}
