import { ConfigError } from "./errors.ts";

/** A listen address split into host and port. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (host 0.0.0.0). Port 0 means "any free port".
 * Throws {@link ConfigError} for `field` describing what is wrong.
 */
export function parseHostPort(addr: string, field = "address"): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) throw new ConfigError(field, `"${addr}" is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(field, `"${addr}": port ${port} is above 65535`);
  const host = m[1] ?? (m[2] === "" || m[2] === undefined ? "0.0.0.0" : m[2]);
  return { host, port };
}
