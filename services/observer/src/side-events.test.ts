import { expect, test } from "bun:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EventLog, readLog } from "./side-events.ts";

const ev = (ms: number) => ({ time: timestampFromMs(ms), ms });
const q = { number: 0n, first: false, follow: false };

async function read(log: EventLog<ReturnType<typeof ev>>, query: Partial<typeof q> = {}) {
  const out: number[] = [];
  for await (const e of readLog(log, { ...q, ...query })) out.push(e.ms);
  return out;
}

test("side events - the log keeps the newest `capacity` events", async () => {
  const log = new EventLog<ReturnType<typeof ev>>(3);
  for (let i = 1; i <= 300; i++) log.add(ev(i));
  expect(await read(log)).toEqual([298, 299, 300]);
  expect(await read(log, { number: 2n })).toEqual([299, 300]);
  expect(await read(log, { number: 2n, first: true })).toEqual([298, 299]);
});

test("side events - a follower gets new events and ends when the log closes", async () => {
  const log = new EventLog<ReturnType<typeof ev>>();
  log.add(ev(1));
  const got: number[] = [];
  const done = (async () => {
    for await (const e of readLog(log, { ...q, follow: true })) got.push(e.ms);
  })();
  log.add(ev(2));
  log.add(ev(3));
  log.close();
  await done;
  expect(got).toEqual([2, 3]);
});
