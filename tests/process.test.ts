import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { ProcProgram } from "@periscope/bpf";
import { waitFor } from "@periscope/devstack";
import {
  decodeProcRecord,
  encodeProcRecord,
  PROC_EVENT,
  type ProcRecord,
  type ProcRecordInit,
  RECORD_TYPE_PROC,
} from "@periscope/wire";
import { CgroupPaths, cgroup2Mount } from "../services/enricher/src/process/cgroups.ts";
import {
  ContainerCache,
  engineTime,
  parseCgroupPath,
} from "../services/enricher/src/process/container-cache.ts";
import { ProcessCache } from "../services/enricher/src/process/process-cache.ts";
import { NS_PER_TICK, readProc } from "../services/enricher/src/process/procfs.ts";
import { testPrefix } from "./harness.ts";

const isRoot = process.getuid?.() === 0;
const mount = cgroup2Mount();
const prefix = testPrefix();

/** A cgroup v2 directory this test made (removed in afterAll). */
function makeCgroup(name: string): { path: string; id: bigint; dir: string } {
  const path = `/${prefix}${name}`;
  const dir = `${mount}${path}`;
  mkdirSync(dir);
  made.push(dir);
  return { path, id: BigInt(statSync(dir).ino), dir };
}
const made: string[] = [];
const spawned: Bun.Subprocess[] = [];

afterAll(async () => {
  for (const p of spawned) {
    if (p.exitCode === null) p.kill("SIGKILL");
    await p.exited;
  }
  for (const dir of made.reverse()) {
    try {
      rmdirSync(dir);
    } catch (err) {
      console.error(`process test: could not remove ${dir}: ${err}`);
    }
  }
});

describe.skipIf(!isRoot || mount === undefined)("process cache from /proc", () => {
  test("backfill knows a running process: binary, args, uid, cgroup, start time", async () => {
    const cg = makeCgroup("backfill");
    const sleeper = Bun.spawn([
      "/bin/sh",
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && exec sleep 29.5 0.5`,
    ]);
    spawned.push(sleeper);
    const pid = sleeper.pid;
    await waitFor(() => readProc(pid)?.comm === "sleep", { timeoutMs: 5000, what: "sleep exec'd" });
    const cache = new ProcessCache({ cgroups: new CgroupPaths(mount), readOnMiss: false });
    expect(cache.backfill()).toBeGreaterThan(1);
    const e = cache.lookup(pid);
    expect(e?.comm).toBe("sleep");
    expect(e?.binary).toMatch(/\/sleep$/);
    expect(e?.args).toEqual(["sleep", "29.5", "0.5"]);
    expect(e?.uid).toBe(0);
    expect(e?.cgroupPath).toBe(cg.path);
    expect(e?.cgroupId).toBe(cg.id);
    const ticks = BigInt(
      readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[19] ?? "-1",
    );
    expect(e?.startNs).toBe(ticks * NS_PER_TICK);
    // Start time at tick precision matches a kernel value of the same tick; another tick does not.
    expect(cache.lookup(pid, ticks * NS_PER_TICK + 3_000_000n)).toBe(e);
    expect(cache.lookup(pid, (ticks + 2n) * NS_PER_TICK)).toBeUndefined();
    // A thread id resolves to its leader: this process' own threads.
    const tids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, "utf8");
    expect(tids).toContain(String(pid));
    expect(cache.leaderOf(pid)).toBe(pid);
    sleeper.kill("SIGKILL");
    await sleeper.exited;
  }, 30_000);

  test("a process in a pid namespace of its own: nsPid is its pid there, tgid the host's", async () => {
    // unshare forks the sleep as pid 1 of a new pid namespace.
    const u = Bun.spawn(["unshare", "--pid", "--fork", "--kill-child", "sleep", "29.4", "0.6"]);
    spawned.push(u);
    let child = 0;
    await waitFor(
      () => {
        const kids = readFileSync(`/proc/${u.pid}/task/${u.pid}/children`, "utf8").trim();
        child = Number(kids.split(" ")[0] ?? 0);
        return child > 0 && readProc(child)?.comm === "sleep";
      },
      { timeoutMs: 5000, what: "sleep started in its own pid namespace" },
    );
    expect(readProc(child)?.nsTgid).toBe(1);
    expect(readProc(process.pid)?.nsTgid).toBe(process.pid);
    const cache = new ProcessCache();
    const e = cache.lookup(child);
    expect(e?.tgid).toBe(child);
    expect(e?.nsPid).toBe(1);
    u.kill("SIGKILL");
    await u.exited;
  }, 30_000);

  test("a cgroup made after the resolver's last scan: the exec's path comes from /proc, a gone process's later", async () => {
    const cgroups = new CgroupPaths(mount, 60_000); // no rescan within the test
    cgroups.scan();
    const late = makeCgroup("late");
    const sleeper = Bun.spawn([
      "/bin/sh",
      "-c",
      `echo $$ > ${late.dir}/cgroup.procs && exec sleep 29.3 0.7`,
    ]);
    spawned.push(sleeper);
    await waitFor(() => readProc(sleeper.pid)?.comm === "sleep", {
      timeoutMs: 5000,
      what: "sleep exec'd in the new cgroup",
    });
    expect(cgroups.pathOf(late.id)).toBe(""); // the resolver alone does not know it yet
    const cache = new ProcessCache({ cgroups, readOnMiss: false });
    const exec = (tgid: number, cgroupId: bigint) =>
      cache.apply(
        rec({ event: PROC_EVENT.EXEC, tgid, startNs: 1_000n, cgroupId, binary: "/bin/sleep" }),
      );
    exec(sleeper.pid, late.id);
    expect(cache.lookup(sleeper.pid)?.cgroupPath).toBe(late.path);
    expect(cgroups.pathOf(late.id)).toBe(late.path); // and the resolver learned it
    // A process already gone has no /proc entry: no path until the cgroup is scanned.
    const later = makeCgroup("later");
    const gone = 0x3ffff0;
    exec(gone, later.id);
    const e = cache.lookup(gone);
    expect(e?.cgroupPath).toBe("");
    cache.fillPath(e as NonNullable<typeof e>);
    expect(e?.cgroupPath).toBe("");
    cgroups.scan();
    cache.fillPath(e as NonNullable<typeof e>);
    expect(e?.cgroupPath).toBe(later.path);
    sleeper.kill("SIGKILL");
    await sleeper.exited;
  }, 30_000);

  test("a miss reads /proc once, then hits", () => {
    const cache = new ProcessCache();
    const e = cache.lookup(process.pid);
    expect(e?.tgid).toBe(process.pid);
    expect(cache.stats.procReads).toBe(1);
    expect(cache.lookup(process.pid)).toBe(e);
    expect(cache.stats.procReads).toBe(1);
    expect(cache.lookup(0x3ffffff)).toBeUndefined();
  });
});

/** A process record as the kernel would send it (through the real encoder and decoder). */
function rec(
  init: Partial<ProcRecordInit> & Pick<ProcRecordInit, "event" | "tgid" | "startNs">,
): ProcRecord {
  const full: ProcRecordInit = {
    cpu: 0,
    tsBootNs: init.startNs,
    pid: init.tgid,
    ppid: 1,
    uid: 1000,
    gid: 1000,
    euid: 1000,
    egid: 1000,
    exitStatus: 0,
    cgroupId: 1n,
    parentStartNs: 0n,
    comm: "x",
    binary: "",
    args: [],
    ...init,
  };
  return decodeProcRecord(encodeProcRecord(full));
}

describe("process cache from lifecycle records", () => {
  test("pid reuse: two processes with one pid resolve by start time; the old one expires", () => {
    const cache = new ProcessCache({ readOnMiss: false, retainMs: 1000 });
    const pid = 4242;
    cache.apply(rec({ event: PROC_EVENT.FORK, tgid: pid, startNs: 5_000_000_000n, comm: "sh" }));
    cache.apply(
      rec({
        event: PROC_EVENT.EXEC,
        tgid: pid,
        startNs: 5_000_000_000n,
        comm: "curl",
        binary: "/usr/bin/curl",
        args: ["curl", "-s"],
      }),
    );
    cache.apply(
      rec({ event: PROC_EVENT.EXIT, tgid: pid, startNs: 5_000_000_000n, exitStatus: 7 << 8 }),
    );
    cache.apply(
      rec({ event: PROC_EVENT.FORK, tgid: pid, startNs: 9_000_000_000n, uid: 33, comm: "nc" }),
    );
    cache.apply(
      rec({
        event: PROC_EVENT.EXEC,
        tgid: pid,
        startNs: 9_000_000_000n,
        uid: 33,
        comm: "nc",
        binary: "/bin/nc",
        nsTgid: 12,
      }),
    );
    const old = cache.lookup(pid, 5_000_000_000n);
    const cur = cache.lookup(pid, 9_000_000_000n);
    expect(old?.binary).toBe("/usr/bin/curl");
    expect(old?.args).toEqual(["curl", "-s"]);
    expect(old?.exitStatus).toBe(7 << 8);
    expect(cur?.binary).toBe("/bin/nc");
    expect(cur?.uid).toBe(33);
    expect(cur?.nsPid).toBe(12); // the exec record's pid in its own namespace
    expect(old?.nsPid).toBe(pid); // none given: a host process, the same number
    expect(cur?.exitedAt).toBeUndefined();
    expect(cache.lookup(pid)).toBe(cur);
    expect(cache.size).toBe(2);
    // After the retention the exited one is gone; the running one stays.
    expect(cache.sweep(performance.now() + 2000)).toBe(1);
    expect(cache.lookup(pid, 5_000_000_000n)).toBeUndefined();
    expect(cache.lookup(pid, 9_000_000_000n)).toBe(cur);
  });

  test("fork inherits the parent's binary and args until exec; the cache stays bounded", () => {
    const cache = new ProcessCache({ readOnMiss: false, maxEntries: 128 });
    cache.apply(
      rec({
        event: PROC_EVENT.EXEC,
        tgid: 10,
        startNs: 1_000_000_000n,
        binary: "/usr/sbin/nginx",
        args: ["nginx"],
      }),
    );
    cache.apply(
      rec({
        event: PROC_EVENT.FORK,
        tgid: 11,
        ppid: 10,
        parentStartNs: 1_000_000_000n,
        startNs: 2_000_000_000n,
      }),
    );
    expect(cache.lookup(11)?.binary).toBe("/usr/sbin/nginx");
    for (let i = 0; i < 1000; i++) {
      cache.apply(rec({ event: PROC_EVENT.FORK, tgid: 1000 + i, startNs: BigInt(3e9 + i * 1e8) }));
      cache.apply(rec({ event: PROC_EVENT.EXIT, tgid: 1000 + i, startNs: BigInt(3e9 + i * 1e8) }));
    }
    expect(cache.size).toBeLessThanOrEqual(128);
    expect(cache.stats.evicted).toBeGreaterThan(800);
    expect(cache.lookup(1999)?.tgid).toBe(1999);
  });

  test("lookups take under 1 µs (65,536 processes)", () => {
    const cache = new ProcessCache({ readOnMiss: false });
    const n = 65_536;
    const base = rec({ event: PROC_EVENT.EXEC, tgid: 1, startNs: 1n, binary: "/bin/true" });
    for (let i = 0; i < n; i++) {
      cache.apply({ ...base, pid: 100 + i, tgid: 100 + i, startNs: BigInt(1e9 + i * 1e7) });
    }
    const starts = Array.from({ length: n }, (_, i) => BigInt(1e9 + i * 1e7));
    // Best of 50 batches: the machine is shared, the fastest batch is the one least disturbed.
    const batch = 20_000;
    const perBatch: number[] = [];
    let found = 0;
    for (let b = 0; b < 50; b++) {
      const t0 = performance.now();
      for (let i = 0; i < batch; i++) {
        const k = ((b * batch + i) * 7919) % n;
        if (cache.lookup(100 + k, starts[k]) !== undefined) found++;
      }
      perBatch.push(((performance.now() - t0) * 1e6) / batch);
    }
    perBatch.sort((a, b) => a - b);
    const best = perBatch[0] ?? Number.POSITIVE_INFINITY;
    const median = perBatch[25] ?? Number.POSITIVE_INFINITY;
    console.log(
      `process cache lookup (65,536 processes, by tgid and start): best ${best.toFixed(0)} ns, median ${median.toFixed(0)} ns`,
    );
    expect(found).toBe(50 * batch);
    expect(best).toBeLessThan(1000);
  }, 60_000);
});

describe.skipIf(!isRoot || mount === undefined)("process cache from the kernel's records", () => {
  let prog: ProcProgram;
  beforeAll(() => {
    prog = ProcProgram.load({ maxArgs: 64 });
  });
  afterAll(() => prog?.close());

  test("200 short processes in a test cgroup: each resolves to its own exec, exit kept", async () => {
    const cg = makeCgroup("forks");
    const cgroups = new CgroupPaths(mount);
    const cache = new ProcessCache({ cgroups, readOnMiss: false });
    const execs: ProcRecord[] = [];
    const sink = {
      addFrom(ring: Uint8Array, offset: number, length: number) {
        const bytes = ring.slice(offset, offset + length);
        if (bytes[0] !== RECORD_TYPE_PROC) return;
        const r = decodeProcRecord(bytes);
        cache.apply(r);
        if (r.event === PROC_EVENT.EXEC && r.cgroupId === cg.id && r.comm === "true") execs.push(r);
      },
    };
    prog.drainInto(sink);
    const n = 200;
    const loop = Bun.spawn([
      "/bin/sh",
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && i=0; while [ $i -lt ${n} ]; do /bin/true arg-$i; i=$((i+1)); done`,
    ]);
    spawned.push(loop);
    expect(await loop.exited).toBe(0);
    await waitFor(
      () => {
        prog.drainInto(sink);
        return execs.length >= n;
      },
      { timeoutMs: 10_000, what: `${n} exec records` },
    );
    prog.drainInto(sink);
    expect(prog.counters().procLost).toBe(0n);
    const keys = new Set(execs.map((r) => `${r.tgid}/${r.startNs}`));
    expect(keys.size).toBe(n);
    const args = new Set<string>();
    for (const r of execs) {
      const e = cache.lookup(r.tgid, r.startNs);
      expect(e?.binary).toBe("/bin/true");
      expect(e?.cgroupPath).toBe(cg.path);
      expect(e?.exitedAt).toBeDefined();
      expect(e?.exitStatus).toBe(0);
      args.add(e?.args[1] ?? "");
    }
    expect(args.size).toBe(n);
    expect(parseCgroupPath(cg.path)).toBeUndefined();
  }, 60_000);
});

describe("container cache", () => {
  test("the engine's since: seconds and nanoseconds, never the whole second only", () => {
    expect(engineTime(1_700_000_000 * 1e9 + 500_000_000)).toBe("1700000000.500000000");
    expect(engineTime(1e9)).toBe("1.000000000");
    expect(engineTime(1_000_000_007)).toBe("1.000000007");
    // Today's times as a float: within the ~256 ns a double keeps.
    const ns = Date.UTC(2026, 11, 2, 10, 56) * 1e6 + 123_456_789;
    const [sec, frac] = engineTime(ns).split(".");
    expect(Number(sec)).toBe(Math.floor(ns / 1e9));
    expect(Math.abs(Number(frac) - 123_456_789)).toBeLessThanOrEqual(256);
  });

  test("cgroup paths name container and runtime", () => {
    const id = "0123456789abcdef".repeat(4);
    expect(parseCgroupPath(`/system.slice/docker-${id}.scope`)).toEqual({ id, runtime: "docker" });
    expect(parseCgroupPath(`/docker/${id}`)).toEqual({ id, runtime: "docker" });
    expect(
      parseCgroupPath(
        `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-${id}.scope`,
      ),
    ).toEqual({ id, runtime: "containerd" });
    expect(parseCgroupPath(`/kubepods/besteffort/pod1/${id}`)).toEqual({
      id,
      runtime: "containerd",
    });
    expect(parseCgroupPath(`/kubepods.slice/crio-${id}.scope`)).toEqual({ id, runtime: "cri-o" });
    expect(parseCgroupPath(`/machine.slice/libpod-${id}.scope/container`)).toEqual({
      id,
      runtime: "podman",
    });
    expect(parseCgroupPath(`/machine.slice/libpod-conmon-${id}.scope`)).toBeUndefined();
    expect(parseCgroupPath("/system.slice/nginx.service")).toEqual({
      id: "nginx.service",
      runtime: "systemd",
    });
    expect(parseCgroupPath("/user.slice/user-0.slice/session-3.scope")).toEqual({
      id: "session-3.scope",
      runtime: "systemd",
    });
    expect(parseCgroupPath("/")).toBeUndefined();
    expect(parseCgroupPath("/psct-x/forks")).toBeUndefined();
  });

  test("without a Docker socket: ids from the path, no engine calls, no errors", async () => {
    const cache = new ContainerCache({ dockerSocket: `/nonexistent/${prefix}docker.sock` });
    await cache.start();
    const id = "ab".repeat(32);
    const c = cache.lookup(`/system.slice/docker-${id}.scope`);
    expect(c).toMatchObject({ id, runtime: "docker", name: "", state: "" });
    expect(cache.lookup("/user.slice")).toBeUndefined();
    expect(cache.apiErrors).toBe(0);
    cache.stop();
  });
});

describe("flows carry the process", () => {
  test("a socket-owner record puts Process in Flow.extensions, fast path bytes = reference bytes", async () => {
    const { mixRecords, registryDeps } = await import("../bench/decode.ts");
    const { MIX_ENDPOINTS, packetMix } = await import("../bench/mix.ts");
    const { processFrame } = await import("../services/enricher/src/frames.ts");
    const { encodeFrame } = await import("../services/enricher/src/frames-fast.ts");
    const { FlowProcesses, PROCESS_TYPE_URL } = await import(
      "../services/enricher/src/process/flow-join.ts"
    );
    const { compileEncoder, FlowBatchSchema, processV1 } = await import("@periscope/proto");
    const { encodeRawFrame, encodeSockOwnerRecord, SOCK_SOURCE } = await import("@periscope/wire");
    const { fromBinary } = await import("@bufbuild/protobuf");

    const mix = packetMix();
    const records = mixRecords(mix, 64);
    const frame = (recs: Uint8Array[]) =>
      encodeRawFrame({
        nodeName: "n1",
        seq: 1n,
        bootId: "boot",
        partition: 0,
        bootToRealtimeNs: 1_700_000_000_000_000_000n,
        sealedUnixNs: 1_700_000_000_000_000_000n,
        records: recs,
      });
    let n = 0;
    const base = () => ({ ...registryDeps(MIX_ENDPOINTS), uuid: () => `u-${++n}` });
    // The first TCP flow of the mix and its record's netns cookie.
    const plain = processFrame(frame(records), base());
    const idx = plain.batch.responses.findIndex(
      (r) => r.responseTypes.case === "flow" && r.responseTypes.value.l4?.protocol.case === "TCP",
    );
    const flow = plain.batch.responses[idx]?.responseTypes.value as import("@periscope/proto").Flow;
    expect(flow).toBeDefined();
    const l4 = flow.l4?.protocol.value as { sourcePort: number; destinationPort: number };
    const rec = records[idx] as Uint8Array;
    const cookie = new DataView(rec.buffer, rec.byteOffset).getBigUint64(40, true);
    const ip4 = (s: string) => Uint8Array.from(s.split(".").map(Number));
    // The receiving side's socket (own = destination): found through the reversed tuple.
    const owner = encodeSockOwnerRecord({
      source: SOCK_SOURCE.TCP_ACCEPT,
      cpu: 0,
      tsBootNs: 1n,
      pid: process.pid,
      tgid: process.pid,
      flowHash: 0,
      family: 4,
      proto: 6,
      netnsCookie: cookie,
      saddr: ip4(flow.IP?.destination ?? ""),
      daddr: ip4(flow.IP?.source ?? ""),
      sport: l4.destinationPort,
      dport: l4.sourcePort,
      uid: 0,
      sockCookie: 99n,
      cgroupId: 0n,
      startNs: 0n,
      comm: "webserver",
    });
    const data = frame([...records, owner]);
    const cache = new ProcessCache();
    n = 0;
    const ref = processFrame(data, { ...base(), processes: new FlowProcesses(cache) });
    n = 0;
    const fast = encodeFrame(data, { ...base(), processes: new FlowProcesses(cache) });
    expect(ref.failures.size).toBe(0);
    expect(ref.flows).toBe(plain.flows);
    const want = compileEncoder(FlowBatchSchema)(ref.batch);
    expect(Buffer.from(fast.bytes).equals(Buffer.from(want))).toBe(true);
    const got = ref.batch.responses[idx]?.responseTypes.value as import("@periscope/proto").Flow;
    expect(got.extensions?.typeUrl).toBe(PROCESS_TYPE_URL);
    const p = fromBinary(processV1.ProcessSchema, got.extensions?.value ?? new Uint8Array());
    expect(p.tgid).toBe(process.pid);
    expect(p.comm).toBe(readProc(process.pid)?.comm ?? "");
    expect(p.binary).toBe(process.execPath);
    expect(p.socketSource).toBe("accept");
    expect(p.nsPid).toBe(process.pid); // this process' own pid namespace is the reader's
    // Flows of other tuples carry nothing.
    const others = ref.batch.responses.filter(
      (r) => r.responseTypes.case === "flow" && r.responseTypes.value.extensions === undefined,
    );
    expect(others.length).toBeGreaterThan(0);
  });
});

describe("process filters and compact output", () => {
  test("--pid/--comm/--binary/--container/--container-image/--uid as CEL on _flow.extensions; compact shows the process", async () => {
    const { create, toBinary } = await import("@bufbuild/protobuf");
    const { AnySchema } = await import("@bufbuild/protobuf/wkt");
    const { FlowSchema, GetFlowsResponseSchema, processV1 } = await import("@periscope/proto");
    const { compileFilters, formatCompact, PROCESS_EXTENSION_TYPE_URL } = await import(
      "@periscope/flow"
    );
    const { buildFilters } = await import("../cli/src/filters.ts");
    const flowOf = (p?: Parameters<typeof create<typeof processV1.ProcessSchema>>[1]) =>
      create(FlowSchema, {
        IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 },
        ...(p === undefined
          ? {}
          : {
              extensions: create(AnySchema, {
                typeUrl: PROCESS_EXTENSION_TYPE_URL,
                value: toBinary(processV1.ProcessSchema, create(processV1.ProcessSchema, p)),
              }),
            }),
      });
    const curl = flowOf({
      pid: 4243,
      tgid: 4242,
      comm: "curl",
      binary: "/usr/bin/curl",
      uid: 1000,
      container: {
        id: "ab".repeat(32),
        name: "web-1",
        image: "curlimages/curl:8",
        runtime: "docker",
      },
    });
    const nc = flowOf({ pid: 77, tgid: 77, comm: "nc", binary: "/bin/nc", uid: 0 });
    const bare = flowOf();
    const match = (flags: [string, string][]) => {
      const { whitelist } = buildFilters(flags.map(([name, value]) => ({ name, value })));
      const pred = compileFilters(whitelist, []);
      return [curl, nc, bare].map((f) => pred(f));
    };
    expect(match([["pid", "4242"]])).toEqual([true, false, false]);
    expect(match([["pid", "4243"]])).toEqual([true, false, false]);
    expect(match([["comm", "nc"]])).toEqual([false, true, false]);
    expect(match([["binary", "curl"]])).toEqual([true, false, false]);
    expect(match([["binary", "/bin/nc"]])).toEqual([false, true, false]);
    expect(match([["container", "web-1"]])).toEqual([true, false, false]);
    expect(match([["container", "abab"]])).toEqual([true, false, false]);
    expect(match([["container-image", "curlimages/*"]])).toEqual([true, false, false]);
    expect(match([["uid", "0"]])).toEqual([false, true, false]);
    // Values of one flag OR, different flags AND.
    expect(
      match([
        ["comm", "nc"],
        ["comm", "curl"],
      ]),
    ).toEqual([true, true, false]);
    expect(
      match([
        ["comm", "curl"],
        ["uid", "0"],
      ]),
    ).toEqual([false, false, false]);
    expect(() => match([["uid", "root"]])).toThrow('--uid: "root" is not a number');
    const line = formatCompact(
      create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: curl } }),
    );
    expect(line).toEndWith("(curl[4242] in web-1)");
    const plain = formatCompact(
      create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: bare } }),
    );
    expect(plain).not.toContain("[");
  });
});

/** A Docker engine already answering with debian:12 imported (the tests never start one here). */
const dockerReady =
  isRoot &&
  process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT !== "1" &&
  Bun.spawnSync(["docker", "image", "inspect", "debian:12"], { stdout: "ignore", stderr: "ignore" })
    .exitCode === 0;
if (!dockerReady)
  console.log("SKIP container lifecycle test: no Docker engine with debian:12 answering");

describe.skipIf(!dockerReady)("container cache with the Docker engine", () => {
  const name = `${prefix}ctr`;
  afterAll(() => {
    Bun.spawnSync(["docker", "rm", "-f", name], { stdout: "ignore", stderr: "ignore" });
  });

  test("follows create, start, pause, stop, remove; name, image, labels from the engine", async () => {
    const cache = new ContainerCache();
    await cache.start();
    const seen: string[] = [];
    cache.subscribe((e) => {
      if (e.container.name === name) seen.push(e.state);
    });
    // Asynchronous: the cache reads the engine's events while the commands run.
    const run = async (args: string[]) => {
      const p = Bun.spawn(["docker", ...args], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      if (code !== 0) throw new Error(`docker ${args.join(" ")}: ${err}`);
      return out.trim();
    };
    try {
      const id = await run([
        "create",
        "--name",
        name,
        "--label",
        "tier=web",
        "--network",
        "none",
        "debian:12",
        "sleep",
        "60",
      ]);
      await run(["start", name]);
      await run(["pause", name]);
      await run(["unpause", name]);
      await run(["stop", "-t", "0", name]);
      await run(["rm", name]);
      await waitFor(() => seen.includes("destroyed"), { timeoutMs: 20_000, what: "destroy event" });
      expect(seen).toEqual(["created", "running", "paused", "running", "exited", "destroyed"]);
      const info = cache.byContainerId(id);
      expect(info).toMatchObject({
        name,
        image: "debian:12",
        runtime: "docker",
        state: "destroyed",
      });
      expect(info?.labels.tier).toBe("web");
      expect(cache.lookup(`/system.slice/docker-${id}.scope`)?.name).toBe(name);
      expect(cache.apiErrors).toBe(0);
    } finally {
      cache.stop();
    }
  }, 60_000);
});
