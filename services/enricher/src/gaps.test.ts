import { describe, expect, test } from "bun:test";
import { SequenceLedger } from "@periscope/bus";
import { gapBatches, MAX_GAP_BATCHES } from "./gaps.ts";

const origin = { node: "n1", bootId: "b1", partition: 4 };

describe("gap batches", () => {
  test("gaps - one LostEvent with the exact count, one batch per missing frame, sources without a hole", () => {
    const gap = { key: "n1/b1/4", fromSeq: 3n, items: 3n, records: 9n, recordsBefore: 5n };
    const out = gapBatches(gap, origin, 1_700_000_000_000);
    expect(out.map((g) => g.seq)).toEqual([3n, 4n, 5n]);
    const lost = out.flatMap((g) =>
      g.batch.responses.flatMap((r) =>
        r.responseTypes.case === "lostEvents" ? [r.responseTypes.value.numEventsLost] : [],
      ),
    );
    expect(lost).toEqual([9n]);
    expect(out[0]?.batch.responses[0]?.nodeName).toBe("n1");
    // A consumer checking the sequence sees seqs 3–5 accounted, then 6 follows on.
    const ledger = new SequenceLedger({ holdMs: 1000, now: () => 0 });
    expect(ledger.accept("k", 2n, 0n, 5n)).toBe("accepted");
    for (const { batch } of out) {
      const s = batch.source;
      expect(s?.bootId).toBe("b1");
      expect(s?.partition).toBe(4);
      expect(ledger.accept("k", s?.seq ?? 0n, s?.recordsBefore ?? 0n, s?.records ?? 0n)).toBe(
        "accepted",
      );
    }
    expect(ledger.accept("k", 6n, 14n, 1n)).toBe("accepted");
    expect(ledger.expire()).toEqual([]);
  });

  test("gaps - a hole of many frames gets at most MAX_GAP_BATCHES batches, still one LostEvent", () => {
    const gap = { key: "k", fromSeq: 1n, items: 100_000n, records: 123n, recordsBefore: 0n };
    const out = gapBatches(gap, origin, 0);
    expect(out).toHaveLength(MAX_GAP_BATCHES);
    expect(out.filter((g) => g.batch.responses.length > 0)).toHaveLength(1);
  });
});
