import { type Bus, RAW_STREAM, subjects } from "@periscope/bus";

/** Raw frames waiting on partitions outside 0 … partitions-1. */
export interface UnownedFrames {
  /** Frames stored on those subjects. */
  readonly frames: number;
  /** The partition numbers seen, ascending. */
  readonly partitions: number[];
}

/**
 * Frames in `PERISCOPE_RAW` on partitions no enricher reads (a collector started with a
 * larger `--partitions` than the enrichers): they would wait until the stream's age limit
 * removes them, so they are looked for and reported instead of going unnoticed.
 */
export async function findUnownedFrames(bus: Bus, partitions: number): Promise<UnownedFrames> {
  const jsm = await bus.jsm();
  const info = await jsm.streams.info(RAW_STREAM, { subjects_filter: subjects.rawAll });
  let frames = 0;
  const seen = new Set<number>();
  for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
    const p = Number(subject.slice(subject.lastIndexOf(".") + 1));
    if (Number.isInteger(p) && p >= partitions) {
      frames += count;
      seen.add(p);
    }
  }
  return { frames, partitions: [...seen].sort((a, b) => a - b) };
}
