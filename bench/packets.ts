/** Test packets for the bench: Ethernet + IPv4 + TCP, checksums filled in. */

/** RFC 1071 ones' complement sum over `bytes`, folded to 16 bits. */
function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Options for {@link tcpPacket}. */
export interface TcpPacketOptions {
  /** TCP flags byte (0x02 SYN, 0x18 PSH|ACK). */
  flags: number;
  /** TCP options, a multiple of 4 bytes. */
  tcpOptions?: number[];
  payloadBytes?: number;
}

/**
 * An Ethernet/IPv4/TCP frame 10.0.0.1:40000 → 10.0.0.2:80 between two locally
 * administered MACs, with valid IPv4 and TCP checksums.
 */
export function tcpPacket(opts: TcpPacketOptions): Uint8Array {
  const tcpOpts = opts.tcpOptions ?? [];
  const tcpLen = 20 + tcpOpts.length;
  const payload = opts.payloadBytes ?? 0;
  const ipLen = 20 + tcpLen + payload;
  const pkt = new Uint8Array(14 + ipLen);
  const v = new DataView(pkt.buffer);
  pkt.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01], 0); // dst MAC, src MAC
  v.setUint16(12, 0x0800); // IPv4
  const ip = 14;
  pkt[ip] = 0x45;
  v.setUint16(ip + 2, ipLen);
  v.setUint16(ip + 4, 0x1234); // id
  v.setUint16(ip + 6, 0x4000); // DF
  pkt[ip + 8] = 64; // TTL
  pkt[ip + 9] = 6; // TCP
  pkt.set([10, 0, 0, 1, 10, 0, 0, 2], ip + 12);
  v.setUint16(ip + 10, ~onesComplementSum(pkt.subarray(ip, ip + 20)) & 0xffff);
  const tcp = ip + 20;
  v.setUint16(tcp, 40000);
  v.setUint16(tcp + 2, 80);
  v.setUint32(tcp + 4, 0x01020304); // seq
  v.setUint32(tcp + 8, opts.flags & 0x10 ? 0x0a0b0c0d : 0); // ack
  pkt[tcp + 12] = (tcpLen / 4) << 4;
  pkt[tcp + 13] = opts.flags;
  v.setUint16(tcp + 14, 64240); // window
  pkt.set(tcpOpts, tcp + 20);
  for (let i = 0; i < payload; i++) pkt[tcp + tcpLen + i] = i & 0xff;
  const pseudo = new Uint8Array(12);
  pseudo.set(pkt.subarray(ip + 12, ip + 20), 0);
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, tcpLen + payload);
  const sum = onesComplementSum(pkt.subarray(tcp), onesComplementSum(pseudo));
  v.setUint16(tcp + 16, ~sum & 0xffff);
  return pkt;
}

/** A 74-byte TCP SYN as Linux sends it: MSS 1460, SACK permitted, timestamps, window scale 7. */
export function tcpSyn(): Uint8Array {
  return tcpPacket({
    flags: 0x02,
    tcpOptions: [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
  });
}

/** A full-size 1514-byte TCP data segment (PSH|ACK, 1460 payload bytes). */
export function tcpFullSegment(): Uint8Array {
  return tcpPacket({ flags: 0x18, payloadBytes: 1460 });
}
