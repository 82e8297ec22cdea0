import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createVethPair, loadedProgIds, type VethPair, waitFor } from "@periscope/testing";
import {
  computeFlowHash,
  decodeProcRecord,
  decodeSockOwnerRecord,
  PROC_EVENT,
  type ProcRecord,
  RECORD_TYPE_PROC,
  RECORD_TYPE_SOCK_OWNER,
  SOCK_SOURCE,
  type SockOwnerRecord,
} from "@periscope/wire";
import { cgroupV2Root, NO_NETNS_COOKIE, netnsCookie, ProcProgram } from "./index.ts";
import { isRoot } from "./test-helpers.ts";

const ipBytes = (ip: string) => Uint8Array.from(ip.split(".").map(Number));

/** cgroup v2 id of a process: the inode of its cgroup directory. */
function cgroupIdOf(pid: number): bigint {
  const line = readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("0::"));
  return BigInt(statSync(join(cgroupV2Root(), line?.slice(3) ?? "/")).ino);
}

/**
 * The kernel reports pids of the initial PID namespace; the minimal-root check runs the
 * suite in a PID namespace of its own, where the test's pids differ, so these run outside it.
 */
const OWN_PID_NS = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (OWN_PID_NS)
  console.log(
    "SKIP process records: PERISCOPE_TEST_IN_MINIMAL_ROOT=1 runs in its own PID namespace",
  );

describe.skipIf(!isRoot || OWN_PID_NS)("bpf proc program", () => {
  let prog: ProcProgram;
  let pair: VethPair;
  const procs: ProcRecord[] = [];
  const owners: SockOwnerRecord[] = [];
  const sink = {
    addFrom(ring: Uint8Array, offset: number, length: number) {
      const bytes = ring.slice(offset, offset + length);
      if (bytes[0] === RECORD_TYPE_PROC) procs.push(decodeProcRecord(bytes));
      else if (bytes[0] === RECORD_TYPE_SOCK_OWNER) owners.push(decodeSockOwnerRecord(bytes));
    },
  };
  const until = async (what: string, cond: () => boolean) => {
    await waitFor(
      () => {
        prog.drainInto(sink);
        return cond();
      },
      { timeoutMs: 5000, what },
    );
  };

  beforeAll(async () => {
    prog = ProcProgram.load({ maxArgs: 64 });
    pair = await createVethPair();
  });

  afterAll(async () => {
    const ids = await loadedProgIds();
    prog?.close();
    await pair?.destroy();
    // Every program of the object is gone after close.
    const after = await loadedProgIds();
    expect(after.size).toBeLessThan(ids.size);
  });

  test("exec reports binary, arguments, ids, cgroup and parent; exit the wait status", async () => {
    const child = Bun.spawn(["/bin/sh", "-c", 'exec /bin/true one "two words"; exit 9']);
    await child.exited;
    const pid = child.pid;
    await until("exec and exit of /bin/true", () =>
      procs.some((r) => r.tgid === pid && r.event === PROC_EVENT.EXIT),
    );
    const execs = procs.filter((r) => r.tgid === pid && r.event === PROC_EVENT.EXEC);
    const last = execs.at(-1);
    expect(last?.binary).toBe("/bin/true");
    expect(last?.args).toEqual(["/bin/true", "one", "two words"]);
    expect(last?.comm).toBe("true");
    expect(last).toMatchObject({ pid, ppid: process.pid, uid: 0, gid: 0, euid: 0, egid: 0 });
    // Outside a container the pid in the process's own pid namespace is its pid.
    expect(last?.nsTgid).toBe(pid);
    expect(last?.cgroupId).toBe(cgroupIdOf(process.pid));
    expect(last?.truncated).toBe(false);
    const exit = procs.find((r) => r.tgid === pid && r.event === PROC_EVENT.EXIT);
    expect(exit?.exitStatus).toBe(0);
    expect(exit?.startNs).toBe(last?.startNs ?? -1n);

    const failing = Bun.spawn(["/bin/sh", "-c", "exit 3"]);
    await failing.exited;
    await until("exit 3", () =>
      procs.some((r) => r.tgid === failing.pid && r.event === PROC_EVENT.EXIT),
    );
    const ex = procs.find((r) => r.tgid === failing.pid && r.event === PROC_EVENT.EXIT);
    expect(ex?.exitStatus).toBe(3 << 8);
  });

  test("arguments beyond max args are cut and flagged", async () => {
    const long = "x".repeat(100);
    const child = Bun.spawn(["/bin/true", long]);
    await child.exited;
    await until("exec with a long argument", () =>
      procs.some((r) => r.tgid === child.pid && r.event === PROC_EVENT.EXEC),
    );
    const rec = procs.find((r) => r.tgid === child.pid && r.event === PROC_EVENT.EXEC);
    expect(rec?.truncated).toBe(true);
    expect(rec?.argsBytes).toBe("/bin/true".length + 1 + 101);
    expect(rec?.args).toEqual(["/bin/true", "x".repeat(64 - 10)]);
  });

  test("forks of many short processes: one fork, exec and exit each, distinct start times", async () => {
    const n = 200;
    const sh = Bun.spawn([
      "/bin/sh",
      "-c",
      `i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`,
    ]);
    await sh.exited;
    const kids = () => procs.filter((r) => r.ppid === sh.pid);
    await until(`${n} exits`, () => kids().filter((r) => r.event === PROC_EVENT.EXIT).length >= n);
    const forks = kids().filter((r) => r.event === PROC_EVENT.FORK);
    const execs = kids().filter((r) => r.event === PROC_EVENT.EXEC && r.binary === "/bin/true");
    expect(forks.length).toBe(n);
    expect(execs.length).toBe(n);
    const keys = new Set(forks.map((r) => `${r.tgid}/${r.startNs}`));
    expect(keys.size).toBe(n);
    for (const f of forks) expect(f.parentStartNs).toBeGreaterThan(0n);
    expect(prog.counters().procLost).toBe(0n);
  });

  const run = (ns: string, argv: string[]) =>
    Bun.spawn(["ip", "netns", "exec", ns, ...argv], { stdin: "pipe", stdout: "pipe" });

  test("TCP client and server sockets are owned by nc on each side, with the flow's hash", async () => {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const server = run(pair.nsB, ["nc", "-l", "-s", pair.ipB, "-p", String(port)]);
    try {
      await until("server listening", () =>
        procs.some((r) => r.tgid === server.pid && r.event === PROC_EVENT.EXEC),
      );
      // Give the listen() a moment to happen: retry the connect until accepted.
      let client: ReturnType<typeof run> | undefined;
      await waitFor(
        async () => {
          client = run(pair.nsA, ["nc", "-N", "-w", "2", pair.ipB, String(port)]);
          client.stdin.write("hello\n");
          client.stdin.end();
          await client.exited;
          return client.exitCode === 0;
        },
        { timeoutMs: 5000, what: "TCP connect accepted" },
      );
      const cpid = client?.pid ?? -1;
      await until(
        "connect and accept owners",
        () => owners.some((o) => o.tgid === cpid) && owners.some((o) => o.tgid === server.pid),
      );
      const c = owners.find((o) => o.tgid === cpid);
      const s = owners.find((o) => o.tgid === server.pid);
      expect(c).toMatchObject({
        source: SOCK_SOURCE.TCP_CONNECT,
        family: 4,
        proto: 6,
        dport: port,
      });
      expect([...(c?.saddr ?? [])]).toEqual([...ipBytes(pair.ipA)]);
      expect([...(c?.daddr ?? [])]).toEqual([...ipBytes(pair.ipB)]);
      expect(c?.comm).toBe("nc");
      expect(c?.netnsCookie).toBe(netnsCookie(pair.nsA));
      expect(s).toMatchObject({ source: SOCK_SOURCE.TCP_ACCEPT, sport: port, dport: c?.sport });
      expect(s?.netnsCookie).toBe(netnsCookie(pair.nsB));
      const hash = computeFlowHash(ipBytes(pair.ipA), c?.sport ?? 0, ipBytes(pair.ipB), port, 6);
      expect(c?.flowHash).toBe(hash);
      expect(s?.flowHash).toBe(hash);
      expect(c?.sockCookie).not.toBe(0n);
      expect(c?.startNs).toBeGreaterThan(0n);
      // One record per socket: the listener reports none, each end of the connection one
      // (its first packet), however many packets followed.
      expect(owners.filter((o) => o.tgid === server.pid && o.proto === 6).length).toBe(1);
      expect(owners.filter((o) => o.tgid === cpid && o.sport === c?.sport).length).toBe(1);
    } finally {
      server.kill();
      await server.exited;
    }
  });

  test("UDP: sender and receiver sockets each reported once per flow", async () => {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const server = run(pair.nsB, ["nc", "-u", "-l", "-s", pair.ipB, "-p", String(port)]);
    try {
      // Its exec comes before its bind: a datagram sent in between is refused (ICMP port
      // unreachable) and ends the client, so wait for the bound socket.
      await waitFor(
        async () => {
          const ss = Bun.spawnSync(["ip", "netns", "exec", pair.nsB, "ss", "-Huln"]);
          return ss.stdout.toString().includes(`:${port}`);
        },
        { timeoutMs: 5000, what: `udp server bound to port ${port}` },
      );
      let client = run(pair.nsA, ["nc", "-u", "-w", "1", pair.ipB, String(port)]);
      await waitFor(
        () => {
          // A client that ended (its idle timeout on a slow machine) is replaced.
          if (client.exitCode !== null) {
            client = run(pair.nsA, ["nc", "-u", "-w", "1", pair.ipB, String(port)]);
          }
          client.stdin.write("ping\n");
          client.stdin.flush();
          prog.drainInto(sink);
          return owners.some((o) => o.tgid === server.pid);
        },
        { timeoutMs: 10_000, what: "datagram received by the server's socket" },
      );
      client.stdin.end();
      await client.exited;
      prog.drainInto(sink);
      const c = owners.filter((o) => o.tgid === client.pid);
      const s = owners.filter((o) => o.tgid === server.pid);
      expect(c.length).toBe(1);
      expect(s.length).toBe(1);
      expect(c[0]).toMatchObject({ source: SOCK_SOURCE.UDP, proto: 17, dport: port });
      expect(s[0]).toMatchObject({ source: SOCK_SOURCE.UDP, sport: port, dport: c[0]?.sport });
      expect([...(s[0]?.saddr ?? [])]).toEqual([...ipBytes(pair.ipB)]);
      const hash = computeFlowHash(
        ipBytes(pair.ipA),
        c[0]?.sport ?? 0,
        ipBytes(pair.ipB),
        port,
        17,
      );
      expect(c[0]?.flowHash).toBe(hash);
      expect(s[0]?.flowHash).toBe(hash);
      expect(s[0]?.netnsCookie).toBe(netnsCookie(pair.nsB));
    } finally {
      server.kill();
      await server.exited;
    }
  });

  test("exec in a new pid namespace carries the pid seen inside it", async () => {
    // unshare forks a child that is pid 1 of the new namespace; it execs /bin/true.
    const u = Bun.spawn(["unshare", "--pid", "--fork", "/bin/true", "in-pidns"]);
    expect(await u.exited).toBe(0);
    const inner = (r: ProcRecord) =>
      r.event === PROC_EVENT.EXEC && r.binary === "/bin/true" && r.args.at(-1) === "in-pidns";
    await until("exec of /bin/true in the new pid namespace", () => procs.some(inner));
    const rec = procs.find(inner);
    expect(rec?.nsTgid).toBe(1);
    expect(rec?.tgid).not.toBe(1);
    expect(rec?.ppid).toBe(u.pid);
  });

  test("a source port reused by another process gets a fresh owner (TCP and UDP)", async () => {
    const expiredBefore = prog.counters().sockExpired;
    const port = 20000 + Math.floor(Math.random() * 10000);
    const sport = 30000 + Math.floor(Math.random() * 10000);
    // No TIME_WAIT in nsA (closed sockets skip it), so the client's port can be bound again.
    const sysctl = Bun.spawn([
      "ip",
      "netns",
      "exec",
      pair.nsA,
      "sysctl",
      "-qw",
      "net.ipv4.tcp_max_tw_buckets=0",
    ]);
    expect(await sysctl.exited).toBe(0);
    const server = run(pair.nsB, ["nc", "-l", "-k", "-s", pair.ipB, "-p", String(port)]);
    try {
      const clients: number[] = [];
      for (let i = 0; i < 2; i++) {
        await waitFor(
          async () => {
            const c = run(pair.nsA, [
              "nc",
              "-N",
              "-w",
              "2",
              "-p",
              String(sport),
              pair.ipB,
              String(port),
            ]);
            c.stdin.write(`hello ${i}\n`);
            c.stdin.end();
            await c.exited;
            if (c.exitCode !== 0) return false;
            clients.push(c.pid);
            return true;
          },
          { timeoutMs: 8000, what: `TCP connection ${i + 1} from port ${sport}` },
        );
      }
      const tcp = () =>
        owners.filter(
          (o) => o.proto === 6 && o.source === SOCK_SOURCE.TCP_CONNECT && o.sport === sport,
        );
      const accepted = () =>
        owners.filter(
          (o) => o.source === SOCK_SOURCE.TCP_ACCEPT && o.sport === port && o.dport === sport,
        );
      await until("both connects and accepts", () =>
        clients.every((pid) => tcp().some((o) => o.tgid === pid) && accepted().length >= 2),
      );
      const [first, second] = clients.map((pid) => tcp().find((o) => o.tgid === pid));
      expect(first?.tgid).not.toBe(second?.tgid);
      expect(first?.flowHash).toBe(second?.flowHash ?? -1);
      expect(first?.sockCookie).not.toBe(second?.sockCookie ?? 0n);
      // Both accepted sockets' owners (copies of the listener's) expire when they close.
      await until(
        "accepted sockets' owners expired",
        () => prog.counters().sockExpired >= expiredBefore + 2n,
      );

      // UDP: the first sender's socket is released, the second gets its own record.
      const udpPort = port + 1;
      const udpSenders: number[] = [];
      for (let i = 0; i < 2; i++) {
        const c = run(pair.nsA, [
          "nc",
          "-u",
          "-w",
          "1",
          "-p",
          String(sport),
          pair.ipB,
          String(udpPort),
        ]);
        c.stdin.write(`ping ${i}\n`);
        c.stdin.end();
        await c.exited;
        udpSenders.push(c.pid);
      }
      const udp = () => owners.filter((o) => o.proto === 17 && o.sport === sport);
      await until("both UDP senders reported", () =>
        udpSenders.every((pid) => udp().some((o) => o.tgid === pid)),
      );
      const hashes = new Set(udp().map((o) => o.flowHash));
      expect(hashes.size).toBe(1);
      for (const pid of udpSenders) expect(udp().filter((o) => o.tgid === pid).length).toBe(1);
    } finally {
      server.kill();
      await server.exited;
    }
  }, 30_000);

  test("namespace filter: socket owners only for watched namespaces, lifecycle unfiltered", async () => {
    const filteredBefore = prog.counters().sockFiltered;
    prog.watchNetns([netnsCookie(pair.nsA)]);
    const port = 20000 + Math.floor(Math.random() * 10000);
    const connectOnce = async (): Promise<{ server: number; client: number }> => {
      const server = run(pair.nsB, ["nc", "-l", "-s", pair.ipB, "-p", String(port)]);
      try {
        let client = -1;
        await waitFor(
          async () => {
            const c = run(pair.nsA, ["nc", "-N", "-w", "2", pair.ipB, String(port)]);
            c.stdin.write("hi\n");
            c.stdin.end();
            await c.exited;
            client = c.pid;
            return c.exitCode === 0;
          },
          { timeoutMs: 5000, what: "TCP connect accepted" },
        );
        return { server: server.pid, client };
      } finally {
        server.kill();
        await server.exited;
      }
    };
    try {
      expect([...prog.watchedNetns()]).toEqual([netnsCookie(pair.nsA)]);
      const one = await connectOnce();
      await until(
        "client owner and exec of the server",
        () =>
          owners.some((o) => o.tgid === one.client) &&
          procs.some((r) => r.tgid === one.server && r.event === PROC_EVENT.EXEC),
      );
      // The accept in nsB happened before the client's connect returned: skipped, counted.
      expect(owners.some((o) => o.tgid === one.server)).toBe(false);
      expect(prog.counters().sockFiltered).toBeGreaterThan(filteredBefore);

      // A cookie no namespace has: nothing reported (a collector with no attached device).
      prog.watchNetns([NO_NETNS_COOKIE]);
      const none = await connectOnce();
      await until("exec of the client", () =>
        procs.some((r) => r.tgid === none.client && r.event === PROC_EVENT.EXEC),
      );
      expect(owners.some((o) => o.tgid === none.client || o.tgid === none.server)).toBe(false);

      prog.watchNetns([]);
      expect(prog.watchedNetns().size).toBe(0);
      const two = await connectOnce();
      await until(
        "both owners with the filter cleared",
        () =>
          owners.some((o) => o.tgid === two.client) && owners.some((o) => o.tgid === two.server),
      );
    } finally {
      prog.watchNetns([]);
    }
  }, 20_000);
});
