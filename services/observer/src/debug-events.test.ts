import { expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DebugEventSchema,
  FlowBatchSchema,
  type GetDebugEventsResponse,
  GetDebugEventsResponseSchema,
} from "@periscope/proto";
import type { StoredEvent } from "./event.ts";
import { ingestBatch } from "./ingest.ts";
import { EventLog } from "./side-events.ts";
import { testFlowResponse } from "./testing.ts";

test("observer debug events - stored beside the flows; an undecodable one is a LostEvent", () => {
  const good = create(GetDebugEventsResponseSchema, {
    nodeName: "node-a",
    time: timestampFromMs(1_700_000_000_000),
    debugEvent: create(DebugEventSchema, { type: 9, hash: 7, message: "ok" }),
  });
  const batch = toBinary(
    FlowBatchSchema,
    create(FlowBatchSchema, {
      responses: [testFlowResponse({ timeMs: 1_700_000_000_000, src: "10.0.0.1", node: "node-a" })],
      debugEvents: [good],
    }),
  );
  // A second debug_events entry (field 3) holding a truncated varint.
  const payload = new Uint8Array([...batch, 0x1a, 0x02, 0x08, 0x80]);
  const stored: StoredEvent[] = [];
  const log = new EventLog<GetDebugEventsResponse>();
  const n = ingestBatch(
    { add: (ev) => stored.push(ev) },
    "periscope.flows.node-a",
    payload,
    undefined,
    log,
  );
  expect(n).toBe(1);
  expect(log.length).toBe(1);
  expect(log.at(0)?.value.debugEvent?.message).toBe("ok");
  expect(stored.map((e) => e.kind)).toEqual(["flow", "lostEvents"]);
  const lost = stored[1]?.resp.responseTypes;
  expect(lost?.case === "lostEvents" ? lost.value.numEventsLost : -1n).toBe(1n);
});
