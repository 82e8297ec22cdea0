/**
 * Reading and driving the web UI through its stable DOM hooks (ui/README.md): the table's
 * row count, the map's edge ids, the time range in the URL, the from/to inputs, a mouse
 * drag of the scrubber and the credentials the page keeps. Shared by tests/ui.test.ts.
 */
import type { Page } from "playwright-core";

/** A time window as the page's URL carries it, epoch ms. */
export interface UrlWindow {
  readonly since: number;
  readonly until: number;
}

/**
 * Rows the flow table holds: its `data-rows` (the virtualised table draws only some of
 * them), or the drawn rows when the attribute is absent.
 */
export async function tableRows(page: Page): Promise<number> {
  const table = page.locator("[data-testid=flow-table]").first();
  const n = await table.getAttribute("data-rows");
  if (n !== null) return Number(n);
  return table.locator("[data-testid=flow-row]").count();
}

/** Rows drawn in the DOM right now. */
export function drawnRows(page: Page): Promise<number> {
  return page.locator("[data-testid=flow-table] [data-testid=flow-row]").count();
}

/** The sessionStorage key the page keeps its Authorization header value under (ui/README.md). */
export const AUTH_STORAGE_KEY = "periscope.authorization";

/** The Authorization header value the page keeps for its tab, null when none. */
export function storedAuthorization(page: Page): Promise<string | null> {
  return page.evaluate((key) => sessionStorage.getItem(key), AUTH_STORAGE_KEY);
}

/** Ids of the edges in the map's list mirror, sorted. */
export async function mapEdgeIds(page: Page): Promise<string[]> {
  const ids = await page
    .locator("[data-testid=map-edge]")
    .evaluateAll((els) => els.map((e) => e.getAttribute("data-edge-id") ?? ""));
  return ids.sort();
}

/** The `since`/`until` of the page's URL, undefined when it is not a window. */
export function urlWindow(page: Page): UrlWindow | undefined {
  const q = new URL(page.url()).searchParams;
  const since = Date.parse(q.get("since") ?? "");
  const until = Date.parse(q.get("until") ?? "");
  if (!Number.isFinite(since) || !Number.isFinite(until)) return undefined;
  return { since, until };
}

/** `ms` as the page's `datetime-local` inputs write it, in the browser's own time zone. */
export function localInput(page: Page, ms: number): Promise<string> {
  return page.evaluate((t) => {
    const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
    return d.toISOString().slice(0, 19);
  }, ms);
}

/**
 * The value of the `datetime-local` input `testid` to the second: the browser leaves out
 * `:00` seconds ("…T10:56" for "…T10:56:00"), which {@link localInput} always writes.
 */
export async function inputTime(page: Page, testid: string): Promise<string> {
  const v = await page.locator(`[data-testid=${testid}]`).first().inputValue();
  return v.length === 16 ? `${v}:00` : v;
}

/** Types a window into the from/to inputs (whole seconds) and applies it with Show. */
export async function typeWindow(page: Page, w: UrlWindow): Promise<void> {
  const range = page.locator("[data-testid=time-range]").first();
  await page
    .locator("[data-testid=time-from]")
    .first()
    .fill(await localInput(page, w.since));
  await page
    .locator("[data-testid=time-to]")
    .first()
    .fill(await localInput(page, w.until));
  await range.locator("button[type=submit]").first().click();
}

/**
 * Drags the scrubber's thumb with the mouse to where `targetSec` (seconds since the epoch,
 * the window's end) lies on it, in steps as a hand would; returns the value it ended at.
 */
export async function dragScrubber(page: Page, targetSec: number): Promise<number> {
  const scrubber = page.locator("[data-testid=scrubber]").first();
  await scrubber.scrollIntoViewIfNeeded();
  const box = await scrubber.boundingBox();
  if (box === null) throw new Error("the scrubber is not visible");
  const read = async () => {
    const [min, max, value] = await scrubber.evaluate((el) => {
      const i = el as unknown as { min: string; max: string; value: string };
      return [Number(i.min), Number(i.max), Number(i.value)];
    });
    return { min, max, value };
  };
  const { min, max, value } = await read();
  if (!(targetSec > min && targetSec < max)) {
    throw new Error(`scrubber target ${targetSec} is outside its range ${min}..${max}`);
  }
  // Chromium's default thumb is 16 px wide; its centre runs from 8 px to width - 8 px.
  const thumb = 16;
  const x = (v: number) => box.x + thumb / 2 + ((v - min) / (max - min)) * (box.width - thumb);
  const y = box.y + box.height / 2;
  await page.mouse.move(x(value), y);
  await page.mouse.down();
  await page.mouse.move(x(targetSec), y, { steps: 12 });
  await page.mouse.up();
  return (await read()).value;
}
