import { expect, test } from "bun:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeRpcError } from "./client.ts";

const codes = Object.values(Code).filter((v): v is Code => typeof v === "number");

test.each(codes.map((c) => [Code[c], c] as const))(
  "client - a %s error line starts with the snake_case code name",
  (name, code) => {
    const snake = name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
    expect(describeRpcError(new ConnectError("boom", code))).toBe(`${snake}: boom`);
  },
);
