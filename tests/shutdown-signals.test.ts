/**
 * Ctrl-C of the run command watching a real interface (a veth in the host namespace
 * whose peer sits in a namespace this test creates), with a SIGTERM to the whole
 * process group 5 ms after the SIGINT: every run must leave no clsact qdisc, no tc
 * filter and none of the programs it attached.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { runOk, waitFor } from "@periscope/devstack";
import {
  createHostVeth,
  type HostVeth,
  hasClsact,
  loadedProgIds,
  tcFilterProgIds,
} from "@periscope/testing";
import { testPrefix } from "./harness.ts";
import { startUp } from "./up-process.ts";

const prefix = testPrefix();
const hostIf = `${prefix}h0`;
const peerNs = `${prefix}peer`;

/** Program ids of the tc filters on `hostIf`'s hooks, and whether a clsact qdisc is there. */
async function tcState(): Promise<{ clsact: boolean; progs: number[] }> {
  const progs = [
    ...(await tcFilterProgIds(undefined, hostIf, "ingress")),
    ...(await tcFilterProgIds(undefined, hostIf, "egress")),
  ];
  return { clsact: await hasClsact(hostIf), progs };
}

let veth: HostVeth | undefined;

beforeAll(async () => {
  veth = await createHostVeth(hostIf, peerNs);
  await runOk(["ip", "link", "set", hostIf, "up"]);
  await runOk(["ip", "-n", peerNs, "link", "set", "eth0", "up"]);
});

afterAll(async () => {
  // Whatever a failed run left: the filters go with the device, which goes with the netns.
  await runOk(["tc", "qdisc", "del", "dev", hostIf, "clsact"]).catch(() => undefined);
  await veth?.destroy();
});

test.each([1, 2, 3])(
  "signals - run %i: SIGINT to the group, SIGTERM 5 ms later, and the kernel is clean",
  async () => {
    // A prefix of its own: the run command removes leftover namespaces with its prefix.
    const up = await startUp(testPrefix(), ["--interfaces", hostIf]);
    let progs: number[] = [];
    try {
      await waitFor(
        async () => {
          const s = await tcState();
          progs = s.progs;
          return s.clsact && s.progs.length === 2;
        },
        { timeoutMs: 20_000, what: `ingress and egress filters on ${hostIf}` },
      );
      const signalledAt = Date.now();
      up.signalGroup("SIGINT");
      await Bun.sleep(5); // the gap between the terminal's SIGINT and a second sender's SIGTERM
      up.signalGroup("SIGTERM");
      const code = await up.exited;
      const stoppedMs = Date.now() - signalledAt;
      expect(code).toBe(0);
      const after = await tcState();
      expect(after).toEqual({ clsact: false, progs: [] });
      const loaded = await loadedProgIds();
      expect(progs.filter((id) => loaded.has(id))).toEqual([]);
      // Both signals reach the run command too; the second is reported, not acted on.
      expect(up.stderr()).toMatch(/(SIGINT|SIGTERM) while stopping; finishing the cleanup first/);
      expect(up.stderr()).not.toMatch(/restarting in|exited with code [1-9]/);
      console.error(`Ctrl-C + SIGTERM: stopped and detached in ${stoppedMs} ms`);
    } finally {
      await up.stop();
    }
  },
  60_000,
);
