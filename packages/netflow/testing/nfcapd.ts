/**
 * Test and bench only: Debian's `nfcapd` as a real IPFIX/NetFlow collector on loopback,
 * and `nfdump` to read back what it stored.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, runOk, waitFor } from "@periscope/devstack";

/** One flow as `nfdump -o json` prints it (the fields the tests read). */
export interface NfdumpFlow {
  first: string;
  last: string;
  in_packets: number;
  in_bytes: number;
  proto: number;
  src_port?: number;
  dst_port?: number;
  icmp_type?: number;
  icmp_code?: number;
  src4_addr?: string;
  dst4_addr?: string;
  src6_addr?: string;
  dst6_addr?: string;
  input_snmp: number;
  output_snmp: number;
  direction: number;
  src_tos: number;
  tcp_flags?: string;
  in_src_mac?: string;
  in_dst_mac?: string;
}

/** A running nfcapd. */
export interface Nfcapd {
  readonly port: number;
  readonly dir: string;
  /** Its log so far (complete after stop: nfcapd's stdout is block-buffered). */
  output(): string;
  /** Bytes waiting in its socket's receive queue (`ss` Recv-Q). */
  queuedBytes(): Promise<number>;
  /**
   * Waits until nfcapd has read every datagram sent so far, stops it (SIGTERM, so it
   * writes its file), reads every flow back and removes the directory.
   */
  stop(): Promise<NfcapdResult>;
  /** Kills it and removes the directory; safe to call twice, after stop too. */
  kill(): Promise<void>;
}

/** What a stopped nfcapd stored and counted. */
export interface NfcapdResult {
  flows: NfdumpFlow[];
  /** From nfcapd's closing line ("Flows: 3, Packets: 179, … Sequence Errors: 0, Bad Packets: 0"). */
  totals: {
    flows: number;
    packets: number;
    bytes: number;
    sequenceErrors: number;
    badPackets: number;
  };
}

/** Whether nfcapd and nfdump are installed. */
export function hasNfdump(): boolean {
  return Bun.which("nfcapd") !== null && Bun.which("nfdump") !== null;
}

/**
 * Starts nfcapd on 127.0.0.1:<port or a free one> (inside network namespace `netns` when
 * given) writing into a fresh temp dir; waits until it listens.
 */
export async function startNfcapd(opts: { port?: number; netns?: string } = {}): Promise<Nfcapd> {
  const port = opts.port ?? (await freePort());
  const inNs = opts.netns === undefined ? [] : ["ip", "netns", "exec", opts.netns];
  const dir = await mkdtemp(join(tmpdir(), "periscope-nfcapd-"));
  const proc = Bun.spawn([...inNs, "nfcapd", "-b", "127.0.0.1", "-p", String(port), "-w", dir], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, TZ: "UTC" },
  });
  let text = "";
  const pump = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) text += dec.decode(chunk, { stream: true });
  })();
  let errText = "";
  const errPump = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) errText += dec.decode(chunk, { stream: true });
  })();
  const queued = async (): Promise<number | undefined> => {
    const out = await runOk([...inNs, "ss", "-Hunl", `sport = :${port}`]);
    const line = out.split("\n").find((l) => l.includes(`127.0.0.1:${port}`));
    return line === undefined ? undefined : Number(line.trim().split(/\s+/)[1]);
  };
  let gone = false;
  const kill = async () => {
    if (!gone) {
      gone = true;
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => proc.exitCode !== null || (await queued()) !== undefined, {
      what: `nfcapd listening on 127.0.0.1:${port}`,
    });
    if (proc.exitCode !== null) {
      await Promise.all([pump, errPump]);
      throw new Error(`nfcapd exited at start: ${errText}${text}`);
    }
  } catch (err) {
    await kill();
    throw err;
  }
  return {
    port,
    dir,
    output: () => `${text}${errText}`,
    queuedBytes: async () => (await queued()) ?? 0,
    async stop() {
      if (gone) throw new Error("nfcapd already stopped");
      await waitFor(async () => (await queued()) === 0, { what: "nfcapd reading its socket" });
      gone = true;
      proc.kill("SIGTERM");
      await proc.exited;
      await Promise.all([pump, errPump]);
      try {
        const json = await runOk(["env", "TZ=UTC", "nfdump", "-R", dir, "-o", "json"], {
          timeoutMs: 30_000,
        }).catch(async (err: unknown) => {
          throw new Error(`nfdump could not read ${dir}`, { cause: err });
        });
        return { flows: parseNfdumpJson(json), totals: parseTotals(`${text}\n${errText}`) };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    kill,
  };
}

function parseTotals(log: string): NfcapdResult["totals"] {
  const m =
    /Flows: (\d+), Packets: (\d+), Bytes: (\d+), Sequence Errors: (\d+), Bad Packets: (\d+)/.exec(
      log,
    );
  if (m === null) throw new Error(`nfcapd printed no totals: ${log.slice(-500)}`);
  const [flows, packets, bytes, sequenceErrors, badPackets] = m.slice(1).map(Number) as number[];
  return {
    flows: flows ?? 0,
    packets: packets ?? 0,
    bytes: bytes ?? 0,
    sequenceErrors: sequenceErrors ?? 0,
    badPackets: badPackets ?? 0,
  };
}

/** Parses `nfdump -o json` output (an array, or nothing when no flows were stored). */
export function parseNfdumpJson(text: string): NfdumpFlow[] {
  const t = text.trim();
  if (t === "" || !t.startsWith("[")) return [];
  return JSON.parse(t) as NfdumpFlow[];
}

/** Milliseconds since the epoch of an nfdump time ("2025-10-09T08:53:20.000", UTC). */
export function nfdumpTimeMs(s: string): number {
  return Date.parse(`${s}Z`);
}
