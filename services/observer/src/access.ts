/**
 * Who may talk to the observer: TLS (optionally mutual) on the listener, and basic or
 * bearer credentials checked per call. TLS applies to every call on the port, as in
 * Hubble; credentials are required for every service except `grpc.health.v1.Health`, so
 * probes (grpc-health-probe, kubelet, load balancers) work without secrets. Reflection
 * needs credentials: it lists the API.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { TlsOptions } from "node:tls";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Metrics } from "@periscope/telemetry";
import type { Counter } from "prom-client";

/** Services answered without credentials. */
export const AUTH_EXEMPT_SERVICES: ReadonlySet<string> = new Set(["grpc.health.v1.Health"]);

/** An access file that cannot be used; `file` names it, the message says what is wrong. */
export class AccessFileError extends Error {
  override readonly name = "AccessFileError";
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new AccessFileError(file, `cannot read ${what} (${code})`);
  }
}

/** The certificate files the listener serves TLS with. */
export interface ServerTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundles client certificates must chain to; non-empty: mutual TLS. */
  readonly clientCaFiles: readonly string[];
}

/**
 * Reads the files into TLS server options: ALPN `h2` and `http/1.1`, and with client CAs
 * a certificate required from every client and verified against them.
 */
export function loadServerTls(files: ServerTlsFiles): TlsOptions {
  const pem = (file: string, what: string, marker: RegExp): string => {
    const text = readText(file, what);
    if (!marker.test(text)) throw new AccessFileError(file, `no PEM ${what} found`);
    return text;
  };
  const cert = pem(files.certFile, "certificate", /-----BEGIN CERTIFICATE-----/);
  const key = pem(files.keyFile, "private key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const mutual = files.clientCaFiles.length > 0;
  return {
    cert,
    key,
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: 10_000,
    ...(mutual
      ? {
          ca: files.clientCaFiles.map((f) =>
            pem(f, "CA certificate", /-----BEGIN CERTIFICATE-----/),
          ),
          requestCert: true,
          rejectUnauthorized: true,
        }
      : {}),
  };
}

/** One user of the basic-auth file. */
interface BasicUser {
  readonly kind: "bcrypt" | "plain";
  readonly secret: string;
}

/** Credentials the server accepts. */
export interface Credentials {
  /** user → password (bcrypt hash or plain); undefined: basic auth off. */
  readonly basic?: ReadonlyMap<string, BasicUser>;
  /** SHA-256 of each accepted bearer token; undefined: bearer tokens off. */
  readonly bearer?: readonly Buffer[];
}

/** Lines without comments (`#`) and blank ones, with their 1-based numbers. */
function lines(text: string): [number, string][] {
  return text
    .split(/\r?\n/)
    .map((l, i): [number, string] => [i + 1, l.trim()])
    .filter(([, l]) => l !== "" && !l.startsWith("#"));
}

/**
 * Parses an htpasswd-like file: `user:password` per line, the password either a bcrypt
 * hash (`$2a$`, `$2b$`, `$2y$`, as `htpasswd -B` writes) or plain text. Other hash
 * schemes (`$apr1$`, `{SHA}`, crypt) are refused, naming the line.
 */
export function parseBasicAuthFile(text: string, file: string): Map<string, BasicUser> {
  const users = new Map<string, BasicUser>();
  for (const [n, line] of lines(text)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new AccessFileError(file, `line ${n}: expected user:password`);
    const user = line.slice(0, colon);
    const secret = line.slice(colon + 1);
    if (secret === "") throw new AccessFileError(file, `line ${n}: empty password for "${user}"`);
    if (users.has(user)) throw new AccessFileError(file, `line ${n}: user "${user}" twice`);
    if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(secret)) {
      users.set(user, { kind: "bcrypt", secret });
    } else if (/^(\$[a-z0-9]+\$|\{[A-Z0-9-]+\})/.test(secret)) {
      throw new AccessFileError(
        file,
        `line ${n}: unsupported password hash for "${user}" (use bcrypt: htpasswd -B, or plain text)`,
      );
    } else {
      users.set(user, { kind: "plain", secret });
    }
  }
  if (users.size === 0) throw new AccessFileError(file, "no users");
  return users;
}

/** Parses a bearer token file: one token per line (blank lines and `#` comments skipped). */
export function parseBearerTokenFile(text: string, file: string): Buffer[] {
  const tokens = lines(text).map(([n, t]) => {
    if (/\s/.test(t)) throw new AccessFileError(file, `line ${n}: a token has no whitespace`);
    return sha256(t);
  });
  if (tokens.length === 0) throw new AccessFileError(file, "no tokens");
  return tokens;
}

/** Reads the configured credential files; undefined when neither is set. */
export function loadCredentials(
  basicAuthFile: string | undefined,
  bearerTokenFile: string | undefined,
): Credentials | undefined {
  if (basicAuthFile === undefined && bearerTokenFile === undefined) return undefined;
  return {
    ...(basicAuthFile !== undefined
      ? { basic: parseBasicAuthFile(readText(basicAuthFile, "basic auth file"), basicAuthFile) }
      : {}),
    ...(bearerTokenFile !== undefined
      ? {
          bearer: parseBearerTokenFile(
            readText(bearerTokenFile, "bearer token file"),
            bearerTokenFile,
          ),
        }
      : {}),
  };
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Why a call was refused, the label of `auth_failures_total`. */
export type AuthFailure = "missing" | "malformed" | "invalid";

/** Registers `periscope_observer_auth_failures_total{reason}`. */
export function createAuthFailures(metrics: Metrics): Counter<"reason"> {
  return metrics.counter("auth_failures_total", "Calls refused as Unauthenticated, by reason", [
    "reason",
  ]);
}

/** Checks `authorization` header values against {@link Credentials}. */
export class Authenticator {
  /** SHA-256 of `user\0password` pairs that verified against a bcrypt hash (bcrypt is slow). */
  readonly #verified = new Set<string>();

  constructor(private readonly creds: Credentials) {}

  /** Undefined when `header` carries accepted credentials, else the refusal. */
  async check(
    header: string | null,
  ): Promise<{ reason: AuthFailure; message: string } | undefined> {
    const schemes = [this.creds.basic && "Basic", this.creds.bearer && "Bearer"]
      .filter(Boolean)
      .join(" or ");
    if (header === null || header.trim() === "") {
      return {
        reason: "missing",
        message: `missing credentials: this server requires ${schemes} authorization`,
      };
    }
    const m = /^(\S+)\s+(\S+)\s*$/.exec(header);
    const scheme = m?.[1]?.toLowerCase();
    const value = m?.[2] ?? "";
    if (scheme === "basic" && this.creds.basic) return this.#basic(value);
    if (scheme === "bearer" && this.creds.bearer) return this.#bearer(value);
    return {
      reason: "malformed",
      message: `unsupported authorization scheme "${m?.[1] ?? header.split(/\s/, 1)[0]}": this server accepts ${schemes}`,
    };
  }

  async #basic(value: string): Promise<{ reason: AuthFailure; message: string } | undefined> {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0)
      return {
        reason: "malformed",
        message: "malformed basic credentials: expected base64 of user:password",
      };
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const entry = this.creds.basic?.get(user);
    const wrong = {
      reason: "invalid" as const,
      message: `invalid username or password for user "${user}"`,
    };
    if (!entry) return wrong;
    if (entry.kind === "plain") {
      return timingSafeEqual(sha256(password), sha256(entry.secret)) ? undefined : wrong;
    }
    const key = sha256(`${user}\0${password}`).toString("hex");
    if (this.#verified.has(key)) return undefined;
    if (!(await Bun.password.verify(password, entry.secret, "bcrypt"))) return wrong;
    if (this.#verified.size >= 1024) this.#verified.clear();
    this.#verified.add(key);
    return undefined;
  }

  #bearer(value: string): { reason: AuthFailure; message: string } | undefined {
    const digest = sha256(value);
    let ok = false;
    for (const t of this.creds.bearer ?? []) ok = timingSafeEqual(digest, t) || ok;
    return ok ? undefined : { reason: "invalid", message: "invalid bearer token" };
  }
}

/**
 * Refuses calls without accepted credentials with `Unauthenticated` (the message says what
 * was missing or wrong) and counts them in `failures`; {@link AUTH_EXEMPT_SERVICES} pass.
 */
export function authInterceptor(auth: Authenticator, failures: Counter<"reason">): Interceptor {
  return (next) => async (req) => {
    if (!AUTH_EXEMPT_SERVICES.has(req.service.typeName)) {
      const refused = await auth.check(req.header.get("authorization"));
      if (refused) {
        failures.inc({ reason: refused.reason });
        throw new ConnectError(refused.message, Code.Unauthenticated);
      }
    }
    return next(req);
  };
}
