/**
 * Headless Chromium for the web UI's tests and bench: Debian's `chromium` driven by
 * playwright-core (no browser download). {@link withBrowser} launches it, hands out a
 * page, saves screenshots under `test-artifacts/ui/` and always closes the browser,
 * also when the body throws.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM = process.env.PERISCOPE_CHROMIUM ?? "/usr/bin/chromium";
/** Screenshots and page logs from the UI tests (gitignored). */
export const ARTIFACTS_DIR = resolve(import.meta.dir, "../../test-artifacts/ui");

/**
 * Why the browser can't run here, or undefined when it can: the binary must exist and,
 * with `probe`, render a page headless (seconds; fails e.g. in a chroot without a
 * usable /dev/shm or /proc).
 */
export function chromiumUnavailable(probe = false): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found (scripts/setup.sh installs chromium)`;
  if (!probe) return undefined;
  const run = Bun.spawnSync(
    [
      CHROMIUM,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--dump-dom",
      "data:text/html,<p>periscope-probe</p>",
    ],
    { stdout: "pipe", stderr: "pipe", timeout: 30_000 },
  );
  if (run.stdout.toString().includes("periscope-probe")) return undefined;
  const err = run.stderr.toString().trim().split("\n").slice(-3).join(" | ");
  return `${CHROMIUM} cannot render a page headless (exit ${run.exitCode}): ${err}`;
}

/** One open page plus the helpers a test needs around it. */
export interface UiSession {
  readonly browser: Browser;
  readonly page: Page;
  /** Console errors and uncaught page errors seen so far, in order. */
  readonly errors: string[];
  /** Saves a full-page PNG as `<name>.png` under {@link ARTIFACTS_DIR}; returns its path. */
  screenshot(name: string): Promise<string>;
}

/** Launches headless Chromium (`--no-sandbox`: tests run as root). */
export async function launchBrowser(): Promise<Browser> {
  const why = chromiumUnavailable();
  if (why !== undefined) throw new Error(`cannot launch Chromium: ${why}`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    timeout: 30_000,
  });
}

/** A {@link UiSession} the caller closes itself (tests sharing one browser). */
export interface OpenUiSession extends UiSession {
  /** Closes the browser; safe twice. */
  close(): Promise<void>;
}

/** Launches Chromium and opens one page of the given size. */
export async function openUi(viewport = { width: 1400, height: 900 }): Promise<OpenUiSession> {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport });
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    const screenshot = async (name: string): Promise<string> => {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      const path = join(ARTIFACTS_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    };
    const close = () => browser.close().catch(() => undefined);
    return { browser, page, errors, screenshot, close };
  } catch (err) {
    await browser.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Runs `body` with a fresh page of the given size and closes the browser afterwards,
 * whether `body` returns or throws.
 */
export async function withBrowser<T>(
  body: (s: UiSession) => Promise<T>,
  viewport = { width: 1400, height: 900 },
): Promise<T> {
  const s = await openUi(viewport);
  try {
    return await body(s);
  } finally {
    await s.close();
  }
}
