import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  decodeProcRecord,
  decodeSockOwnerRecord,
  encodeProcRecord,
  encodeSockOwnerRecord,
  type MalformedReason,
  PROC_EVENT,
  PROC_FIXED_SIZE,
  PROC_LAYOUT,
  PROC_MAX_ARGS,
  PROC_RODATA,
  type ProcRecordInit,
  readFlowHash,
  SOCK_OWNER_LAYOUT,
  SOCK_SOURCE,
  type SockOwnerRecord,
} from "./index.ts";
import {
  type BtfStructs,
  bpfBuildDir,
  type ElfSymbol,
  expectMatchesBtf,
  loadBtfStructs,
  malformed,
  readElfSymbols,
} from "./test-helpers.ts";

const objectPath = join(bpfBuildDir, "proc.bpf.o");
let btf: BtfStructs;
let symbols: Map<string, ElfSymbol>;

beforeAll(async () => {
  btf = await loadBtfStructs(objectPath);
  symbols = await readElfSymbols(objectPath);
});

test("wire proc - pscope_proc and pscope_sock_owner match the BTF of proc.bpf.o", () => {
  expectMatchesBtf(btf, "pscope_proc", PROC_LAYOUT);
  expectMatchesBtf(btf, "pscope_sock_owner", SOCK_OWNER_LAYOUT);
  expect(PROC_LAYOUT.fields.data.offset).toBe(PROC_FIXED_SIZE);
});

test("wire proc - max_args is the only .rodata global, where the loader writes it", () => {
  expect(btf.datasec(".rodata")).toEqual([{ name: "max_args", offset: 0, size: 4 }]);
  expect(symbols.get("max_args")?.size).toBe(PROC_RODATA.max_args.size);
});

const exec: ProcRecordInit = {
  event: PROC_EVENT.EXEC,
  cpu: 1,
  tsBootNs: 5_000_000_123n,
  pid: 4242,
  tgid: 4242,
  ppid: 100,
  uid: 1000,
  gid: 1001,
  euid: 0,
  egid: 1002,
  exitStatus: 0,
  cgroupId: 77n,
  startNs: 4_000_000_000n,
  parentStartNs: 1_000_000n,
  comm: "true",
  binary: "/bin/true",
  args: ["/bin/true", "--a b", "ü"],
};

test("wire proc - exec record round-trips with path and arguments", () => {
  const bytes = encodeProcRecord(exec);
  expect(bytes.length).toBe(
    PROC_FIXED_SIZE + "/bin/true\0".length + "/bin/true\0--a b\0ü\0".length + 1,
  );
  expect(decodeProcRecord(bytes)).toEqual({
    ...exec,
    nsTgid: exec.tgid,
    argsBytes: 19,
    truncated: false,
  });
});

test("wire proc - the pid in the process's own pid namespace sits at ns_tgid (offset 100)", () => {
  const bytes = encodeProcRecord({ ...exec, nsTgid: 7 });
  expect(new DataView(bytes.buffer).getUint32(PROC_LAYOUT.fields.ns_tgid.offset, true)).toBe(7);
  expect(PROC_LAYOUT.fields.ns_tgid.offset).toBe(100);
  const rec = decodeProcRecord(bytes);
  expect(rec.nsTgid).toBe(7);
  expect(rec.tgid).toBe(4242);
});

test("wire proc - fork and exit carry no data; exit keeps the wait status", () => {
  const exit = decodeProcRecord(
    encodeProcRecord({ ...exec, event: PROC_EVENT.EXIT, exitStatus: 3 << 8 }),
  );
  expect(exit.event).toBe(PROC_EVENT.EXIT);
  expect(exit.exitStatus).toBe(768);
  expect(exit.binary).toBe("");
  expect(exit.args).toEqual([]);
  const fork = encodeProcRecord({ ...exec, event: PROC_EVENT.FORK });
  expect(fork.length).toBe(PROC_FIXED_SIZE);
});

test("wire proc - arguments beyond the limit are cut and flagged", () => {
  const long = "x".repeat(PROC_MAX_ARGS);
  const rec = decodeProcRecord(encodeProcRecord({ ...exec, args: ["a", long] }));
  expect(rec.truncated).toBe(true);
  expect(rec.argsBytes).toBe(2 + PROC_MAX_ARGS + 1);
  expect(rec.args).toEqual(["a", "x".repeat(PROC_MAX_ARGS - 2)]);
});

test.each<[string, (b: Uint8Array) => Uint8Array, MalformedReason]>([
  ["too_short", (b) => b.subarray(0, 50), "too_short"],
  ["wrong_type", (b) => Uint8Array.from(b).fill(4, 0, 1), "wrong_type"],
  ["bad_version", (b) => Uint8Array.from(b).fill(9, 2, 3), "bad_version"],
  ["trailing bytes", (b) => Uint8Array.from([...b, 0]), "trailing_bytes"],
  ["path_len beyond cap_len", (b) => Uint8Array.from(b).fill(200, 96, 97), "cap_len_beyond_sample"],
])("wire proc - decode rejects %s", (_name, mangle, reason) => {
  expect(malformed(() => decodeProcRecord(mangle(encodeProcRecord(exec)))).reason).toBe(reason);
});

const owner: SockOwnerRecord = {
  source: SOCK_SOURCE.TCP_CONNECT,
  cpu: 0,
  tsBootNs: 9n,
  pid: 11,
  tgid: 10,
  flowHash: 0xcafef00d,
  family: 4,
  proto: 6,
  netnsCookie: 4096n,
  saddr: Uint8Array.from([10, 0, 0, 1]),
  daddr: Uint8Array.from([10, 0, 0, 2]),
  sport: 40000,
  dport: 80,
  uid: 0,
  sockCookie: 1234n,
  cgroupId: 55n,
  startNs: 8n,
  comm: "curl",
};

test("wire proc - socket-owner record round-trips and carries its flow hash at 32", () => {
  const bytes = encodeSockOwnerRecord(owner);
  expect(decodeSockOwnerRecord(bytes)).toEqual(owner);
  expect(readFlowHash(bytes)).toBe(0xcafef00d);
  const v6 = { ...owner, family: 6, saddr: new Uint8Array(16).fill(1), daddr: new Uint8Array(16) };
  expect(decodeSockOwnerRecord(encodeSockOwnerRecord(v6))).toEqual(v6);
  expect(malformed(() => decodeSockOwnerRecord(bytes.subarray(0, 127))).reason).toBe("too_short");
});
