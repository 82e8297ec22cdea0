import { afterEach, describe, expect, test } from "bun:test";
import { waitFor } from "@periscope/testing";
import {
  type DecodedTemplate,
  decodeIpfixMessage,
  fieldUint,
  sampleNetflowRecord,
} from "../../test-helpers.ts";
import { IE } from "./elements.ts";
import { IpfixExporter } from "./exporter.ts";

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A UDP socket on loopback collecting every datagram it receives. */
async function receiver() {
  const got: Uint8Array[] = [];
  const sock = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: { data: (_s, data) => void got.push(data) },
  });
  cleanups.push(() => sock.close());
  return { port: sock.port, got };
}

describe("ipfix exporter", () => {
  test("ipfix exporter - templates at open, then data messages a collector can decode", async () => {
    const rx = await receiver();
    const ex = await IpfixExporter.open({
      host: "127.0.0.1",
      port: rx.port,
      observationDomainId: 9,
    });
    cleanups.push(() => ex.close());
    await waitFor(() => rx.got.length === 1);
    const known = new Map<number, DecodedTemplate>();
    expect(decodeIpfixMessage(rx.got[0] as Uint8Array, known).templates.length).toBe(2);
    const records = Array.from({ length: 40 }, (_, i) =>
      sampleNetflowRecord({ srcPort: i + 1, bytes: BigInt(i * 10), packets: BigInt(i) }),
    );
    await ex.export(records);
    await waitFor(() => rx.got.length === ex.stats.messages);
    const decoded = rx.got.slice(1).map((m) => decodeIpfixMessage(m, known));
    const ports = decoded.flatMap((m) =>
      m.records.map((r) => Number(fieldUint(r, IE.sourceTransportPort))),
    );
    expect(ports).toEqual(records.map((r) => r.srcPort));
    expect(decoded.every((m) => m.header.domain === 9)).toBe(true);
    expect(decoded.map((m) => m.header.sequence)).toEqual([0, 16, 32]);
    expect(ex.sequence).toBe(40);
    expect(ex.stats.records).toBe(40);
    // Data after open goes without templates (they went out at open, the interval is 60 s).
    expect(decoded.every((m) => m.templates.length === 0)).toBe(true);
  });

  test("ipfix exporter - a bad port or unresolvable host is refused with its name", async () => {
    await expect(IpfixExporter.open({ host: "127.0.0.1", port: 0 })).rejects.toThrow(
      /port must be 1..65535, got 0/,
    );
    await expect(IpfixExporter.open({ host: "no-such-host.invalid", port: 4739 })).rejects.toThrow(
      /no-such-host.invalid does not resolve/,
    );
  });

  test("ipfix exporter - export after close rejects", async () => {
    const rx = await receiver();
    const ex = await IpfixExporter.open({ host: "127.0.0.1", port: rx.port });
    await ex.close();
    await expect(ex.export([sampleNetflowRecord()])).rejects.toThrow(/closed/);
  });
});
