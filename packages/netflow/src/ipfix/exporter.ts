import { lookup } from "node:dns/promises";
import type { NetflowExporter } from "../exporter.ts";
import type { NetflowRecord } from "../record.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, IpfixEncoder, type IpfixEncoderOptions } from "./encoder.ts";

/** Settings of an {@link IpfixExporter}. */
export interface IpfixExporterOptions extends IpfixEncoderOptions {
  /** Collector host name or address. */
  readonly host: string;
  /** Collector UDP port. */
  readonly port: number;
}

/** Counters of an {@link IpfixExporter}. */
export interface IpfixExporterStats {
  /** IPFIX messages handed to the kernel. */
  messages: number;
  /** Data records in them. */
  records: number;
  /** Sends that found the socket buffer full and waited for it to drain. */
  backpressureWaits: number;
  /**
   * Errors the socket reported afterwards, e.g. ICMP port unreachable while the collector is
   * down: messages before it may have been lost downstream, which UDP cannot tell exactly.
   */
  socketErrors: number;
}

/** Largest IPFIX message when the collector is reached over IPv6 (1500 − 40 IP − 8 UDP). */
const DEFAULT_MAX_MESSAGE_BYTES_V6 = 1452;

/**
 * IPFIX over UDP to one collector (RFC 7011 §10.3): the template set goes out once at
 * open and again with the first data after each template interval; data sets are packed
 * up to the message size. When the socket buffer is full the send waits for it to drain,
 * so a slow path shows up as a backed-up export queue, where records are counted as dropped.
 */
export class IpfixExporter implements NetflowExporter {
  readonly name = "ipfix";
  readonly #socket: Bun.udp.Socket<"uint8array">;
  readonly #encoder: IpfixEncoder;
  readonly #address: string;
  readonly #port: number;
  #drained: (() => void) | undefined;
  readonly #stats: IpfixExporterStats = {
    messages: 0,
    records: 0,
    backpressureWaits: 0,
    socketErrors: 0,
  };

  private constructor(
    socket: Bun.udp.Socket<"uint8array">,
    encoder: IpfixEncoder,
    address: string,
    port: number,
  ) {
    this.#socket = socket;
    this.#encoder = encoder;
    this.#address = address;
    this.#port = port;
  }

  /** Resolves the collector, opens the socket and sends the templates. */
  static async open(opts: IpfixExporterOptions): Promise<IpfixExporter> {
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new RangeError(`IPFIX collector port must be 1..65535, got ${opts.port}`);
    }
    const resolved = await lookup(opts.host).catch((err: unknown) => {
      throw new Error(`IPFIX collector host ${opts.host} does not resolve`, { cause: err });
    });
    const v6 = resolved.family === 6;
    const encoder = new IpfixEncoder({
      ...opts,
      maxMessageBytes:
        opts.maxMessageBytes ?? (v6 ? DEFAULT_MAX_MESSAGE_BYTES_V6 : DEFAULT_MAX_MESSAGE_BYTES),
    });
    let self: IpfixExporter | undefined;
    const socket = await Bun.udpSocket({
      binaryType: "uint8array",
      hostname: v6 ? "::" : "0.0.0.0",
      socket: {
        drain: () => {
          if (self !== undefined) self.#onDrain();
        },
        error: () => {
          if (self !== undefined) self.#stats.socketErrors++;
        },
      },
    });
    self = new IpfixExporter(socket, encoder, resolved.address, opts.port);
    await self.#send(encoder.templateMessage());
    return self;
  }

  /** Sequence number of the next message: data records sent so far, modulo 2^32. */
  get sequence(): number {
    return this.#encoder.sequence;
  }

  /** Messages, records and backpressure waits so far. */
  get stats(): Readonly<IpfixExporterStats> {
    return this.#stats;
  }

  /** The local UDP port messages leave from. */
  get localPort(): number {
    return this.#socket.port;
  }

  async export(records: readonly NetflowRecord[]): Promise<void> {
    if (this.#socket.closed) throw new Error("IPFIX exporter is closed");
    const before = this.#encoder.sequence;
    for (const msg of this.#encoder.encode(records)) await this.#send(msg);
    this.#stats.records += (this.#encoder.sequence - before) >>> 0;
  }

  async close(): Promise<void> {
    this.#socket.close();
    this.#onDrain();
  }

  async #send(msg: Uint8Array): Promise<void> {
    while (!this.#socket.send(msg, this.#port, this.#address)) {
      if (this.#socket.closed) throw new Error("IPFIX exporter closed while sending");
      this.#stats.backpressureWaits++;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    this.#stats.messages++;
  }

  #onDrain(): void {
    const wake = this.#drained;
    this.#drained = undefined;
    wake?.();
  }
}
