import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { processV1 } from "@periscope/proto";
import { PROCESS_TYPE_URL } from "./flow-join.ts";
import { encodeProcessAny, type ProcessFields } from "./process-encode.ts";

/** What toBinary gives for the same values. */
const reference = (p: ProcessFields): Uint8Array =>
  toBinary(
    AnySchema,
    create(AnySchema, {
      typeUrl: PROCESS_TYPE_URL,
      value: toBinary(processV1.ProcessSchema, create(processV1.ProcessSchema, p)),
    }),
  );

const base: ProcessFields = {
  pid: 4242,
  tgid: 4240,
  ppid: 1,
  comm: "curl",
  binary: "/usr/bin/curl",
  args: ["curl", "-s", "http://10.0.0.1/"],
  argsTruncated: false,
  uid: 1000,
  gid: 1000,
  euid: 1000,
  egid: 1000,
  cgroupId: 12345n,
  cgroupPath: "/system.slice/docker-abc.scope",
  startTimeNs: 1_234_567_890_123n,
  socketSource: "connect",
  nsPid: 7,
};

describe("process extension encoding", () => {
  const cases: [string, ProcessFields][] = [
    ["a host process", base],
    [
      "zero values left out, empty arguments kept",
      {
        ...base,
        ppid: 0,
        comm: "",
        args: ["", "x"],
        uid: 0,
        gid: 0,
        euid: 0,
        egid: 0,
        cgroupId: 0n,
        cgroupPath: "",
        startTimeNs: 0n,
        socketSource: "",
        nsPid: 0,
      },
    ],
    [
      "a container with labels (empty value kept), truncated arguments, large ids",
      {
        ...base,
        pid: 0xffffffff,
        argsTruncated: true,
        cgroupId: 0xffff_ffff_ffff_ffffn,
        startTimeNs: 2n ** 63n,
        container: {
          id: "a".repeat(64),
          name: "web-1",
          image: "nginx:1.27",
          runtime: "docker",
          labels: { "com.docker.compose.project": "demo", empty: "" },
          state: "running",
        },
      },
    ],
    [
      "a container with no fields",
      { ...base, container: { id: "", name: "", image: "", runtime: "", labels: {}, state: "" } },
    ],
    [
      "long and non-ASCII strings (lengths of two bytes and more, surrogate pairs)",
      {
        ...base,
        binary: `/opt/${"é".repeat(100)}/bin`,
        args: ["x".repeat(200), "日本語", "🦀".repeat(50), "y".repeat(5000)],
        container: {
          id: "b".repeat(64),
          name: "n",
          image: "i",
          runtime: "docker",
          labels: Object.fromEntries(
            Array.from({ length: 20 }, (_, i) => [`k${i}`, "v".repeat(i * 10)]),
          ),
          state: "paused",
        },
      },
    ],
  ];
  for (const [name, fields] of cases) {
    test(`the same bytes as toBinary: ${name}`, () => {
      expect(encodeProcessAny(PROCESS_TYPE_URL, fields)).toEqual(reference(fields));
    });
  }
});
