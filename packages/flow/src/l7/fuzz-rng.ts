/** Seeded PRNG (mulberry32): the same seed gives the same cases on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `seed` with 1–4 random edits: byte flips, cuts, insertions, duplicated runs. */
export function mutate(seed: Uint8Array, rand: () => number): Uint8Array {
  let bytes = Array.from(seed);
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    switch (Math.floor(rand() * 4)) {
      case 0:
        if (bytes.length > 0) bytes[at % bytes.length] = Math.floor(rand() * 256);
        break;
      case 1:
        bytes = bytes.slice(0, at);
        break;
      case 2:
        bytes.splice(at, 0, Math.floor(rand() * 256));
        break;
      default:
        bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(rand() * 16)));
    }
  }
  return Uint8Array.from(bytes);
}
