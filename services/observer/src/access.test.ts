import { describe, expect, test } from "bun:test";
import {
  AccessFileError,
  Authenticator,
  loadServerTls,
  parseBasicAuthFile,
  parseBearerTokenFile,
} from "./access.ts";
import { ConfigError, parseConfig } from "./config.ts";

const ENV = { PERISCOPE_NODE_NAME: "n1" };

describe("observer access files", () => {
  test("access - basic auth file: bcrypt and plain users, comments skipped", () => {
    const hash = `$2y$10$${"a".repeat(53)}`;
    const users = parseBasicAuthFile(`# admins\n\nalice:${hash}\nbob:pa:ss\n`, "users");
    expect([...users.keys()]).toEqual(["alice", "bob"]);
    expect(users.get("alice")?.kind).toBe("bcrypt");
    expect(users.get("bob")).toEqual({ kind: "plain", secret: "pa:ss" });
  });

  test.each([
    ["nocolon", "users: line 1: expected user:password"],
    ["a:", 'users: line 1: empty password for "a"'],
    ["a:x\na:y", 'users: line 2: user "a" twice'],
    ["a:$apr1$xyz$abc", 'users: line 1: unsupported password hash for "a"'],
    ["a:{SHA}abc=", 'users: line 1: unsupported password hash for "a"'],
    ["# nobody\n", "users: no users"],
  ])("access - basic auth file %p is refused", (text, message) => {
    expect(() => parseBasicAuthFile(text, "users")).toThrow(message);
    expect(() => parseBasicAuthFile(text, "users")).toThrow(AccessFileError);
  });

  test("access - bearer token file: one per line; whitespace inside or none at all refused", () => {
    expect(parseBearerTokenFile("t1\n# c\nt2\n", "tokens").length).toBe(2);
    expect(() => parseBearerTokenFile("a b\n", "tokens")).toThrow(
      "tokens: line 1: a token has no whitespace",
    );
    expect(() => parseBearerTokenFile("\n", "tokens")).toThrow("tokens: no tokens");
  });

  test("access - TLS files that are missing or not PEM are named", () => {
    expect(() =>
      loadServerTls({ certFile: "/nonexistent.crt", keyFile: "/x.key", clientCaFiles: [] }),
    ).toThrow("/nonexistent.crt: cannot read certificate (ENOENT)");
    expect(() =>
      loadServerTls({ certFile: import.meta.path, keyFile: "/x.key", clientCaFiles: [] }),
    ).toThrow(`${import.meta.path}: no PEM certificate found`);
  });

  test("access - authenticator: scheme, encoding and credentials checked", async () => {
    const auth = new Authenticator({
      basic: parseBasicAuthFile("bob:pw\n", "u"),
      bearer: parseBearerTokenFile("tok\n", "t"),
    });
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    expect(await auth.check(`Basic ${b64("bob:pw")}`)).toBeUndefined();
    expect(await auth.check(`basic ${b64("bob:pw")}`)).toBeUndefined();
    expect(await auth.check("Bearer tok")).toBeUndefined();
    expect(await auth.check(`Basic ${b64("bob:pW")}`)).toMatchObject({ reason: "invalid" });
    expect(await auth.check(`Basic ${b64("bobpw")}`)).toMatchObject({ reason: "malformed" });
    expect(await auth.check("Bearer tok2")).toMatchObject({ reason: "invalid" });
    expect(await auth.check(null)).toMatchObject({ reason: "missing" });
    expect(await auth.check("Negotiate abc")).toEqual({
      reason: "malformed",
      message: 'unsupported authorization scheme "Negotiate": this server accepts Basic or Bearer',
    });
    const bearerOnly = new Authenticator({ bearer: parseBearerTokenFile("tok\n", "t") });
    expect(await bearerOnly.check(`Basic ${b64("bob:pw")}`)).toMatchObject({ reason: "malformed" });
  });
});

describe("observer access config", () => {
  test("access - TLS, client CA, auth files and unix listen address from flags and env", () => {
    const c = parseConfig(
      [
        "--tls-cert-file",
        "/c.pem",
        "--tls-key-file=/k.pem",
        "--listen-address",
        "unix:///run/o.sock",
      ],
      { ...ENV, PERISCOPE_TLS_CLIENT_CA_FILES: "/a.pem, /b.pem", PERISCOPE_BASIC_AUTH_FILE: "/u" },
    );
    expect(c).toMatchObject({
      tlsCertFile: "/c.pem",
      tlsKeyFile: "/k.pem",
      tlsClientCaFiles: ["/a.pem", "/b.pem"],
      basicAuthFile: "/u",
      listenAddr: "unix:///run/o.sock",
    });
    expect(c.bearerTokenFile).toBeUndefined();
  });

  test.each([
    [["--tls-cert-file", "/c"], "--tls-cert-file: --tls-cert-file and --tls-key-file go together"],
    [["--tls-key-file", "/k"], "--tls-key-file: --tls-cert-file and --tls-key-file go together"],
    [["--tls-client-ca-files", "/ca"], "--tls-client-ca-files: client CAs need TLS"],
    [
      ["--listen-address", "unix://rel.sock"],
      '--listen-address: "unix://rel.sock": a unix socket address is unix:///absolute/path',
    ],
  ])("access - config %p is refused", (argv, message) => {
    expect(() => parseConfig(argv, ENV)).toThrow(message);
    expect(() => parseConfig(argv, ENV)).toThrow(ConfigError);
  });
});
