// Test-only re-exports: the public API plus the low-level netns helper.
export * from "./index.ts";
export { addNetns as addNetnsForTest } from "./netns.ts";
