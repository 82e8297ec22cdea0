import { describe, expect, test } from "bun:test";
import { UsageError } from "./args.ts";
import { authorizationHeader, extractConnectionArgs, PLAIN_CONNECTION } from "./connection.ts";

describe("connection flags", () => {
  test("connection - flags are taken out wherever they stand; the rest is kept in order", () => {
    const { argv, conn } = extractConnectionArgs([
      "--last",
      "3",
      "--tls",
      "--tls-ca-cert-files=/a.pem,/b.pem",
      "--pod",
      "x",
      "--tls-server-name",
      "obs.example",
      "--basic-auth-username",
      "u",
      "--basic-auth-password=p",
      "--",
      "--tls",
    ]);
    expect(argv).toEqual(["--last", "3", "--pod", "x", "--", "--tls"]);
    expect(conn).toEqual({
      tls: true,
      tlsAllowInsecure: false,
      tlsCaCertFiles: ["/a.pem", "/b.pem"],
      tlsServerName: "obs.example",
      basicAuthUsername: "u",
      basicAuthPassword: "p",
    });
    expect(authorizationHeader(conn)).toBe(`Basic ${Buffer.from("u:p").toString("base64")}`);
  });

  test("connection - environment variables, flags win", () => {
    const { conn } = extractConnectionArgs(["--tls=false"], {
      PERISCOPE_TLS: "true",
      PERISCOPE_TLS_ALLOW_INSECURE: "1",
      PERISCOPE_TLS_CLIENT_CERT_FILE: "/c",
      PERISCOPE_TLS_CLIENT_KEY_FILE: "/k",
      PERISCOPE_BEARER_TOKEN: "tok",
    });
    expect(conn).toMatchObject({ tls: false, tlsAllowInsecure: true, tlsClientCertFile: "/c" });
    expect(authorizationHeader(conn)).toBe("Bearer tok");
    expect(authorizationHeader(PLAIN_CONNECTION)).toBeUndefined();
  });

  test.each([
    [
      ["--tls-client-cert-file", "/c"],
      {},
      "--tls-client-cert-file and --tls-client-key-file go together",
    ],
    [["--tls-server-name"], {}, "flag needs an argument: --tls-server-name"],
    [[], { PERISCOPE_TLS: "yes" }, 'invalid argument "yes" for --tls (PERISCOPE_TLS)'],
    [["--bearer-token", "t", "--basic-auth-username", "u"], {}, "exclude each other"],
  ])("connection - %p %p is a usage error", (argv, env, message) => {
    expect(() => extractConnectionArgs(argv, env)).toThrow(message);
    expect(() => extractConnectionArgs(argv, env)).toThrow(UsageError);
  });
});
