/**
 * Prints every kernel record the collectors publish, straight from NATS:
 *   bun run examples/subscribe.ts [nats-url]
 * A core subscription sees the frames JetStream stores without consuming them.
 */
import { connect } from "@nats-io/transport-node";
import { decodePacket } from "@periscope/flow";
import {
  decodeRawFrame,
  decodeRecordType,
  decodeTraceRecord,
  FLAG_L3,
  rawFrameRecords,
} from "@periscope/wire";

const nc = await connect({ servers: process.argv[2] ?? "nats://127.0.0.1:4222" });
console.log("subscribed to periscope.raw.>");
for await (const msg of nc.subscribe("periscope.raw.>")) {
  const frame = decodeRawFrame(msg.data); // periscope.raw.v1.RawFrame
  for (const bytes of rawFrameRecords(frame).records) {
    const type = decodeRecordType(bytes); // pscope_hdr.type: 4 trace, 1 drop, 5 policy verdict, 2 debug
    if (type !== 4) {
      console.log(`${frame.nodeName} record type ${type}, ${bytes.length} bytes`);
      continue;
    }
    const rec = decodeTraceRecord(bytes);
    const ip = decodePacket(rec.data, rec.flags & FLAG_L3 ? "ip" : "ethernet").ip;
    const what = ip ? `${ip.source} -> ${ip.destination} proto ${ip.protocol}` : "not IP";
    console.log(
      `${frame.nodeName} ifindex ${rec.ifindex} flow 0x${rec.flowHash.toString(16)}: ${what}`,
    );
  }
}
