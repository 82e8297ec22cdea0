import { describe, expect, test } from "bun:test";
import { recorder } from "@periscope/proto";
import { UsageError } from "./args.ts";
import { parseDurationMs, parseRecordArgs } from "./record.ts";

describe("record args", () => {
  test("record - filters, limits and server as hubble record takes them", () => {
    const a = parseRecordArgs(
      [
        "10.0.0.1/32 0 10.0.0.2/32 80 TCP",
        "fd00::/64 53 ::/0 0 udp",
        "--file-prefix",
        "web",
        "--packet-limit=10",
        "--bytes-limit",
        "5000",
        "--time-limit",
        "1.5s",
        "--max-capture-len",
        "96",
        "--server",
        "obs:4245",
      ],
      "localhost:4245",
    );
    expect(a.server).toBe("obs:4245");
    expect(a.start.filesink?.filePrefix).toBe("web");
    expect(
      a.start.include.map((f) => [
        f.sourceCidr,
        f.sourcePort,
        f.destinationCidr,
        f.destinationPort,
        f.protocol,
      ]),
    ).toEqual([
      ["10.0.0.1/32", 0, "10.0.0.2/32", 80, recorder.Protocol.TCP],
      ["fd00::/64", 53, "::/0", 0, recorder.Protocol.UDP],
    ]);
    expect(a.start.maxCaptureLength).toBe(96);
    expect(a.start.stopCondition?.packetsCapturedCount).toBe(10n);
    expect(a.start.stopCondition?.bytesCapturedCount).toBe(5000n);
    expect(a.start.stopCondition?.timeElapsed?.seconds).toBe(1n);
    expect(a.start.stopCondition?.timeElapsed?.nanos).toBe(500_000_000);
  });

  test.each([
    [[], /at least one filter/],
    [["10.0.0.1/32 0 10.0.0.2/32 80"], /5 fields, got 4/],
    [["10.0.0.1/32 0 10.0.0.2/32 99999 TCP"], /destination port "99999"/],
    [["10.0.0.1/32 x 10.0.0.2/32 80 TCP"], /source port "x"/],
    [["10.0.0.1/32 0 10.0.0.2/32 80 ICMP"], /unknown protocol "ICMP"/],
    [["0.0.0.0/0 0 0.0.0.0/0 0 ANY", "--time-limit", "10"], /--time-limit/],
    [["0.0.0.0/0 0 0.0.0.0/0 0 ANY", "--packet-limit", "-1"], /--packet-limit/],
  ])("record - %p is a usage error naming what is wrong", (argv, re) => {
    expect(() => parseRecordArgs(argv, "x:1")).toThrow(UsageError);
    expect(() => parseRecordArgs(argv, "x:1")).toThrow(re);
  });

  test("record - durations", () => {
    expect(parseDurationMs("t", "250ms")).toBe(250);
    expect(parseDurationMs("t", "2m")).toBe(120_000);
    expect(parseDurationMs("t", "1h")).toBe(3_600_000);
  });
});
