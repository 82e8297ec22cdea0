import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FlowFilterSchema, GetFlowsRequestSchema } from "@periscope/proto";
import { checkedBody, countFiltersBinary } from "./request-guard.ts";

/** An envelope: flags byte, 4-byte big-endian length, the message. */
function envelope(msg: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + msg.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, msg.length);
  out.set(msg, 5);
  return out;
}

function request(whitelist: number, blacklist: number): Uint8Array {
  const f = (i: number) => create(FlowFilterSchema, { sourceIp: [`10.0.0.${i & 255}`] });
  return toBinary(
    GetFlowsRequestSchema,
    create(GetFlowsRequestSchema, {
      number: 5n,
      whitelist: Array.from({ length: whitelist }, (_, i) => f(i)),
      blacklist: Array.from({ length: blacklist }, (_, i) => f(i)),
    }),
  );
}

/** Runs `body` (split into `chunk`-byte pieces) through the check; the bytes out, or the error. */
async function run(body: Uint8Array, chunk: number, opts: { json?: boolean; max?: number } = {}) {
  async function* pieces() {
    for (let i = 0; i < body.length; i += chunk) yield body.subarray(i, i + chunk);
  }
  const out: number[] = [];
  try {
    for await (const c of checkedBody(pieces(), opts.json ?? false, opts.max ?? 10, 1 << 20)) {
      out.push(...c);
    }
  } catch (err) {
    return err;
  }
  return Uint8Array.from(out);
}

describe("request guard", () => {
  test("guard - counts top-level whitelist and blacklist entries", () => {
    expect(countFiltersBinary(request(3, 2))).toEqual({ whitelist: 3, blacklist: 2 });
  });

  test.each([1, 3, 7, 4096])(
    "guard - a request within the cap passes unchanged in %p-byte chunks",
    async (chunk) => {
      const body = envelope(request(6, 4));
      expect(await run(body, chunk)).toEqual(body);
    },
  );

  test.each([1, 5, 64])(
    "guard - a request over the cap fails with InvalidArgument (%p-byte chunks)",
    async (chunk) => {
      const err = await run(envelope(request(8, 3)), chunk);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toBe(
        "too many filters: 11 (whitelist 8, blacklist 3); this server accepts at most 10 per request",
      );
    },
  );

  test("guard - 2-byte empty filters are counted without decoding them", async () => {
    const msg = new Uint8Array(200_000);
    for (let i = 0; i < msg.length; i += 2) msg[i] = 0x32; // whitelist, length 0
    const t0 = performance.now();
    const err = await run(envelope(msg), 16_384, { max: 128 });
    expect((err as ConnectError).rawMessage).toStartWith("too many filters: 100000 ");
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("guard - gzip-compressed and JSON messages are checked too", async () => {
    const gz = await run(envelope(gzipSync(request(11, 0)), 1), 100);
    expect((gz as ConnectError).code).toBe(Code.InvalidArgument);
    const json = new TextEncoder().encode(
      JSON.stringify({ whitelist: Array(12).fill({ sourceIp: ["10.0.0.1"] }), blacklist: [{}] }),
    );
    const js = await run(envelope(json), 50, { json: true });
    expect((js as ConnectError).rawMessage).toStartWith("too many filters: 13 ");
  });

  test("guard - what it cannot parse or what is over the size cap goes on unchanged", async () => {
    const garbage = envelope(Uint8Array.from([0xff, 0xff, 0xff]));
    expect(await run(garbage, 2)).toEqual(garbage);
    const huge = new Uint8Array(64);
    new DataView(huge.buffer).setUint32(1, 2 << 20); // claims 2 MiB > 1 MiB cap
    expect(await run(huge, 10)).toEqual(huge);
    const truncated = envelope(request(1, 0)).subarray(0, 9);
    expect(await run(truncated, 4)).toEqual(truncated);
  });
});
