/**
 * Makes the enricher bench's packet capture (bench/testdata/enricher-mix.pcap.gz) from
 * real traffic: two test namespaces joined by a veth, HTTP/1.1 servers (Bun, ports 80
 * and 8080, small pages and a 256 KiB download), a TCP echo service on 6379 (small
 * request/response pairs on one connection, like a cache), iperf3 (bulk TCP), dnsmasq
 * answering A, AAAA, CNAME and NXDOMAIN, and clients in the other namespace: curl
 * (keep-alive, IPv4 and IPv6), dig (UDP and TCP), ping, and plain UDP datagrams.
 * Segmentation offloads are off, so packets are MTU-sized as on a NIC. tcpdump records
 * the client's veth; each packet is kept as long as the collector's default capture
 * rules would capture it (128 bytes, 512 for DNS, 1024 for HTTP). Run as root: `bun bench/mix-capture.ts`; the namespaces and
 * every process are removed afterwards, also on failure.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk } from "@periscope/devstack/testing.ts";
import { createVethPair } from "@periscope/testing";
import {
  CAPTURE_CLIENT,
  CAPTURE_SERVER,
  CAPTURE_SNAPLEN,
  defaultCaptureLen,
  MIX_CAPTURE_PATH,
} from "./mix.ts";
import { type Child, nsSpawn, startTcpdump, tcpdumpOutput } from "./tcpdump.ts";

const SERVER_JS = `
const big = "x".repeat(256 * 1024);
for (const port of [80, 8080]) {
  Bun.serve({ hostname: "::", port, fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === "/big") return new Response(big, { headers: { "content-type": "text/plain" } });
    if (u.pathname === "/missing") return new Response("not here", { status: 404 });
    return new Response(JSON.stringify({ path: u.pathname, items: [1, 2, 3] }), { headers: { "content-type": "application/json" } });
  }});
}
Bun.listen({ hostname: "::", port: 6379, socket: { data(sock, d) { sock.write(d); } } });
console.log("ready");
`;

/** The pcap with each packet cut to what the collector's default capture rules keep. */
function cutToCaptureLen(pcap: Uint8Array): Uint8Array<ArrayBuffer> {
  const view = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const parts: Uint8Array[] = [pcap.subarray(0, 24)];
  for (let off = 24; off + 16 <= pcap.length; ) {
    const capLen = view.getUint32(off + 8, true);
    const packet = pcap.subarray(off + 16, off + 16 + capLen);
    const keep = Math.min(capLen, defaultCaptureLen(packet));
    const head = pcap.slice(off, off + 16);
    new DataView(head.buffer).setUint32(8, keep, true);
    parts.push(head, packet.subarray(0, keep));
    off += 16 + capLen;
  }
  return new Uint8Array(Buffer.concat(parts));
}

async function waitLine(child: Child, want: string): Promise<void> {
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  while (!text.includes(want)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child exited before "${want}": ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
}

async function run(ns: string, argv: string[]): Promise<void> {
  await runOk(["ip", "netns", "exec", ns, ...argv]);
}

async function main(): Promise<void> {
  const pair = await createVethPair();
  const dir = await mkdtemp(join(tmpdir(), "pscope-mix-"));
  const children: Child[] = [];
  try {
    const { nsA, nsB, ifA, ifB } = pair;
    await runOk(["ip", "-n", nsA, "addr", "add", `${CAPTURE_CLIENT.v6}/64`, "dev", ifA, "nodad"]);
    await runOk(["ip", "-n", nsB, "addr", "add", `${CAPTURE_SERVER.v6}/64`, "dev", ifB, "nodad"]);
    for (const [ns, dev] of [
      [nsA, ifA],
      [nsB, ifB],
    ] as const) {
      await run(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"]);
    }
    const server = nsSpawn(nsB, ["bun", "-e", SERVER_JS]);
    children.push(server);
    await waitLine(server, "ready");
    const dns = nsSpawn(nsB, [
      ...["dnsmasq", "-d", "-q", "--no-resolv", "--no-hosts", "--bind-interfaces", "-p", "53"],
      ...["--listen-address", CAPTURE_SERVER.v4, "--listen-address", CAPTURE_SERVER.v6],
      ...["--pid-file=", `--conf-file=/dev/null`, "--local=/example/"],
      `--host-record=shop.example,${CAPTURE_SERVER.v4},${CAPTURE_SERVER.v6}`,
      "--cname=www.shop.example,shop.example",
    ]);
    children.push(dns);
    // dnsmasq answers once it is up; ask until it does
    for (let i = 0; ; i++) {
      const p = Bun.spawnSync([
        "ip",
        "netns",
        "exec",
        nsA,
        "dig",
        "+short",
        "+time=1",
        "+tries=1",
        `@${CAPTURE_SERVER.v4}`,
        "shop.example",
      ]);
      if (p.stdout.toString().trim() !== "") break;
      if (i > 50) throw new Error("dnsmasq does not answer");
      await Bun.sleep(100);
    }
    const iperf = nsSpawn(nsB, ["iperf3", "-s", "--forceflush", "-B", CAPTURE_SERVER.v4]);
    children.push(iperf);
    await waitLine(iperf, "listening");
    const file = join(dir, "mix.pcap");
    const dump = await startTcpdump(nsA, ifA, file, CAPTURE_SNAPLEN, []);
    children.push(dump);
    const s4 = CAPTURE_SERVER.v4;
    const s6 = `[${CAPTURE_SERVER.v6}]`;
    for (let round = 0; round < 3; round++) {
      await run(nsA, [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-H",
        `X-Request-Id: r-${round}`,
        `http://${s4}:8080/api/cart?id=${round}`,
        `http://${s4}:8080/api/items`,
        `http://${s4}:8080/missing`,
      ]);
      await run(nsA, ["curl", "-sS", "-o", "/dev/null", `http://${s6}:80/index.html`]);
      for (const [name, type] of [
        ["shop.example", "A"],
        ["shop.example", "AAAA"],
        ["www.shop.example", "A"],
        ["nx.example", "A"],
      ] as const) {
        await run(nsA, ["dig", "+short", "+tries=1", `@${s4}`, name, type]);
      }
      await run(nsA, [
        "dig",
        "+short",
        "+tcp",
        "+tries=1",
        `@${CAPTURE_SERVER.v6}`,
        "shop.example",
        "AAAA",
      ]);
      await run(nsA, ["ping", "-c", "2", "-i", "0.2", s4]);
      await run(nsA, ["ping", "-6", "-c", "2", "-i", "0.2", CAPTURE_SERVER.v6]);
      await run(nsA, [
        "bash",
        "-c",
        `for i in 1 2 3 4; do echo datagram-$i > /dev/udp/${s4}/9999; done`,
      ]);
      await run(nsA, [
        "bash",
        "-c",
        `exec 3<>/dev/tcp/${s4}/6379; for i in $(seq 1 20); do echo "GET session:$i" >&3; read -r l <&3; done`,
      ]);
    }
    await run(nsA, ["iperf3", "-c", s4, "-n", "200K", "-l", "16K"]);
    await run(nsA, ["curl", "-sS", "-o", "/dev/null", `http://${s4}:8080/big`]);
    await run(nsA, ["curl", "-sS", "-o", "/dev/null", `http://${s6}:80/big`]);
    dump.kill("SIGINT");
    await dump.exited;
    process.stderr.write(await tcpdumpOutput(dump));
    const pcap = cutToCaptureLen(new Uint8Array(await Bun.file(file).arrayBuffer()));
    await Bun.write(MIX_CAPTURE_PATH, Bun.gzipSync(pcap, { level: 9 }));
    process.stderr.write(`wrote ${MIX_CAPTURE_PATH} (${pcap.length} bytes of pcap)\n`);
  } finally {
    for (const c of children) c.kill("SIGKILL");
    await Promise.all(children.map((c) => c.exited));
    await pair.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
