import { describe, expect, test } from "bun:test";
import { parseUpArgs, UsageError } from "./args.ts";

describe("up args", () => {
  test("up args - defaults, and the environment's interfaces and NATS URL", () => {
    expect(parseUpArgs([], {}, "/state")).toEqual({
      interfaces: undefined,
      natsUrl: undefined,
      natsPort: 4222,
      observerAddr: "localhost:4245",
      opsPortBase: 9401,
      demoPrefix: "psc-",
      stateDir: "/state",
      observeArgs: ["-f"],
    });
    const env = { PERISCOPE_INTERFACES: "eth0", PERISCOPE_NATS_URL: "nats://n:4222" };
    expect(parseUpArgs([], env, "/s")).toMatchObject({
      interfaces: "eth0",
      natsUrl: "nats://n:4222",
    });
  });

  test("up args - flags override, and everything after -- goes to observe", () => {
    const o = parseUpArgs(
      [
        "--interfaces",
        "ns/eth0",
        "--nats-port",
        "14222",
        "--ops-port-base",
        "19401",
        "--demo-prefix",
        "t1-",
        "--",
        "--last",
        "5",
      ],
      { PERISCOPE_INTERFACES: "eth9" },
      "/s",
    );
    expect(o).toMatchObject({
      interfaces: "ns/eth0",
      natsPort: 14222,
      opsPortBase: 19401,
      demoPrefix: "t1-",
      observeArgs: ["--last", "5"],
    });
  });

  test.each([
    [["--nats-port", "0"], '--nats-port: "0" is not a port'],
    [["--ops-port-base", "x"], '--ops-port-base: "x" is not a port'],
    [["--interfaces"], "--interfaces needs a value"],
    [["--demo-prefix", "Bad_"], '--demo-prefix: "Bad_" must be'],
    [["--frobnicate"], 'unknown argument "--frobnicate"'],
  ])("up args - %p is refused", (argv, msg) => {
    expect(() => parseUpArgs(argv, {}, "/s")).toThrow(UsageError);
    expect(() => parseUpArgs(argv, {}, "/s")).toThrow(msg);
  });
});
