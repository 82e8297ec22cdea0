import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { DnsMessage } from "@periscope/flow";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { DnsNameCache } from "./dns-cache.ts";
import {
  BadDnsNamesMessage,
  DNS_NAMES_SUBJECT,
  decodeDnsNames,
  encodeDnsNames,
  MAX_ENTRIES_PER_MESSAGE,
  startDnsNameShare,
} from "./dns-share.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function answer(name: string, ip: string, ttl: number): DnsMessage {
  return {
    id: 1,
    qr: true,
    rcode: 0,
    questions: [{ name, qtype: 1 }],
    answers: [{ name, type: 1, ttl, ip }],
  } as unknown as DnsMessage;
}

describe("dns names codec", () => {
  test("round-trips entries with relative TTLs", () => {
    const msg = {
      from: "enricher-a",
      entries: [
        { ip: "10.1.2.3", ttlMs: 30_000, names: ["a.test", "cdn.a.test"] },
        { ip: "fd00::5", ttlMs: 0, names: ["six.test"] },
      ],
    };
    expect(decodeDnsNames(encodeDnsNames(msg))).toEqual(msg);
  });

  test.each([
    ["\xff\xfe", "not UTF-8 JSON"],
    ["[1]", "not a JSON object"],
    ['{"v":2,"from":"x","e":[]}', "version 2"],
    ['{"v":1,"e":[]}', "from: not an id"],
    ['{"v":1,"from":"x","e":{}}', "e: not an array"],
    ['{"v":1,"from":"x","e":[["10.0.0.1",5]]}', "e[0]: not [ip, ttlMs, names]"],
    ['{"v":1,"from":"x","e":[["nope",5,["a.test"]]]}', 'e[0]: ip "nope" is not an address'],
    ['{"v":1,"from":"x","e":[["10.0.0.1",-1,["a.test"]]]}', "e[0]: ttlMs -1 out of range"],
    ['{"v":1,"from":"x","e":[["10.0.0.1",1.5,["a.test"]]]}', "e[0]: ttlMs 1.5 out of range"],
    ['{"v":1,"from":"x","e":[["10.0.0.1",5,[]]]}', "e[0]: names must be"],
    ['{"v":1,"from":"x","e":[["10.0.0.1",5,["A.Test"]]]}', 'e[0]: bad name "A.Test"'],
    ['{"v":1,"from":"x","e":[["10.0.0.1",5,["a.test."]]]}', 'e[0]: bad name "a.test."'],
  ])("refuses %s naming the fault", (text, reason) => {
    const bytes = text === "\xff\xfe" ? new Uint8Array([0xff, 0xfe]) : enc(text);
    expect(() => decodeDnsNames(bytes)).toThrow(BadDnsNamesMessage);
    expect(() => decodeDnsNames(bytes)).toThrow(reason);
  });

  test("refuses more entries than a message may carry", () => {
    const e = Array.from({ length: MAX_ENTRIES_PER_MESSAGE + 1 }, () => [
      "10.0.0.1",
      1,
      ["a.test"],
    ]);
    expect(() => decodeDnsNames(enc(JSON.stringify({ v: 1, from: "x", e })))).toThrow(
      "entries, at most",
    );
  });
});

describe("dns name cache merge", () => {
  test("applied names expire like learnt ones and keep the later expiry", () => {
    const c = new DnsNameCache(8);
    c.apply("10.0.0.1", ["a.test"], 10_000, 1000);
    expect(c.names("10.0.0.1", 10_999)).toEqual(["a.test"]);
    expect(c.names("10.0.0.1", 11_000)).toBeUndefined();
    // A TTL of 0 still holds for the minimum of 5 s.
    c.apply("10.0.0.2", ["z.test"], 0, 0);
    expect(c.names("10.0.0.2", 4999)).toEqual(["z.test"]);
    // A shorter TTL for a name already held does not shorten it.
    c.apply("10.0.0.3", ["b.test"], 60_000, 0);
    c.apply("10.0.0.3", ["b.test", "c.test"], 6000, 0);
    expect(c.names("10.0.0.3", 30_000)).toEqual(["b.test"]);
  });

  test("applied names are bounded per address and per cache", () => {
    const c = new DnsNameCache(2);
    c.apply("10.0.0.1", ["a.test"], 60_000, 0);
    c.apply("10.0.0.2", ["b.test"], 60_000, 0);
    c.apply("10.0.0.3", ["c.test"], 60_000, 0);
    expect(c.size).toBe(2);
    expect(c.evicted).toBe(1);
    const many = Array.from({ length: 20 }, (_, i) => `n${i}.test`);
    c.apply("10.0.0.4", many, 60_000, 0);
    expect(c.names("10.0.0.4", 1)).toHaveLength(16);
  });

  test("learn reports each address to onLearn, apply does not", () => {
    const c = new DnsNameCache(8);
    const seen: [string, readonly string[], number][] = [];
    c.onLearn = (ip, names, ttl) => seen.push([ip, names, ttl]);
    c.learn(answer("x.test.", "10.9.9.9", 42), 0);
    c.apply("10.9.9.8", ["y.test"], 1000, 0);
    expect(seen).toEqual([["10.9.9.9", ["x.test"], 42_000]]);
    expect(c.names("10.9.9.9", 41_999)).toEqual(["x.test"]);
  });
});

describe("dns name exchange over NATS", () => {
  let nats: LocalNats;
  const conns: NatsConnection[] = [];
  beforeAll(async () => {
    nats = await startLocalNats();
  });
  afterAll(async () => {
    for (const nc of conns) await nc.close();
    await nats.stop();
  });
  const dial = async (): Promise<NatsConnection> => {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    return nc;
  };

  test("a name learnt by one replica reaches the others, not itself; bad messages are counted", async () => {
    const [ca, cb, cc] = [new DnsNameCache(64), new DnsNameCache(64), new DnsNameCache(64)];
    const bad: string[] = [];
    const a = startDnsNameShare({ nc: await dial(), cache: ca, instanceId: "a" });
    const b = startDnsNameShare({
      nc: await dial(),
      cache: cb,
      instanceId: "b",
      onBad: (r) => bad.push(r),
    });
    const c = startDnsNameShare({ nc: await dial(), cache: cc, instanceId: "c" });
    const raw = await dial();
    await Promise.all(conns.map((nc) => nc.flush()));
    try {
      ca.learn(answer("api.example.test", "10.7.0.1", 300), Date.now());
      await waitFor(() => b.counts.applied === 1 && c.counts.applied === 1, {
        what: "entry applied by b and c",
      });
      expect(cb.names("10.7.0.1", Date.now())).toEqual(["api.example.test"]);
      expect(cc.names("10.7.0.1", Date.now())).toEqual(["api.example.test"]);
      expect(a.counts).toMatchObject({ sent: 1, applied: 0 });
      // The applied entry is not sent on again by its receivers.
      expect(b.counts.sent).toBe(0);

      raw.publish(DNS_NAMES_SUBJECT, enc('{"v":1,"from":"z","e":[["10.0.0.300",5,["x.test"]]]}'));
      raw.publish(DNS_NAMES_SUBJECT, enc("garbage"));
      await waitFor(() => b.counts.bad === 2, { what: "two bad messages counted" });
      expect(bad).toEqual(['e[0]: ip "10.0.0.300" is not an address', "not UTF-8 JSON"]);
      expect(cb.names("10.0.0.300", Date.now())).toBeUndefined();

      // Still working after bad input.
      cc.learn(answer("later.test", "10.7.0.2", 60), Date.now());
      await waitFor(() => cb.names("10.7.0.2", Date.now()) !== undefined, {
        what: "later entry at b",
      });
    } finally {
      await Promise.all([a.stop(), b.stop(), c.stop()]);
    }
  });

  test("a burst of answers in one turn goes out in few messages", async () => {
    const [ca, cb] = [new DnsNameCache(4096), new DnsNameCache(4096)];
    const ncB = await dial();
    let messages = 0;
    const counter = ncB.subscribe(DNS_NAMES_SUBJECT, {
      callback: () => {
        messages++;
      },
    });
    const a = startDnsNameShare({ nc: await dial(), cache: ca, instanceId: "a" });
    const b = startDnsNameShare({ nc: ncB, cache: cb, instanceId: "b" });
    await Promise.all(conns.map((nc) => nc.flush()));
    try {
      const n = MAX_ENTRIES_PER_MESSAGE + 100;
      for (let i = 0; i < n; i++)
        ca.learn(answer(`h${i}.test`, `10.8.${i >> 8}.${i & 255}`, 60), Date.now());
      await waitFor(() => b.counts.applied === n, { what: `${n} entries applied` });
      expect(messages).toBe(2);
      expect(cb.size).toBe(n);
    } finally {
      counter.unsubscribe();
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
