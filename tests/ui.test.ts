/**
 * The web UI end to end in headless Chromium (Debian's chromium, playwright-core)
 * against the whole pipeline: netns pods with real traffic, a real nats-server, the
 * services as processes, the page served by the observer. The map shows the pods and
 * their edges, a dropped SYN shows on its edge with the kernel's reason, a filter
 * narrows the table to exactly what GetFlows answers for it, and flows from before an
 * observer kill -9 are shown again through the time range. Screenshots of the map and
 * the table go to test-artifacts/ui/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { PodProcess } from "@periscope/devstack";
import { type Flow, FlowFilterSchema, type GetFlowsRequestSchema } from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import type { Page } from "playwright-core";
import { type Stack, startStack, testPrefix } from "./harness.ts";
import { chromiumUnavailable, type OpenUiSession, openUi } from "./ui/browser.ts";

type RequestInit = MessageInitShape<typeof GetFlowsRequestSchema>;

// In the minimal-root chroot the browser must prove it can render before the test runs.
const IN_MINIMAL_ROOT = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
const NO_CHROMIUM = chromiumUnavailable(IN_MINIMAL_ROOT);
const SKIP = NO_CHROMIUM !== undefined;
if (SKIP) {
  console.log(
    `SKIP tests/ui.test.ts: ${NO_CHROMIUM}${IN_MINIMAL_ROOT ? " (PERISCOPE_TEST_IN_MINIMAL_ROOT=1)" : ""}`,
  );
}

const NODE = "ui-node";
const HTTP_PORT = 8080;
const UDP_PORT = 9999;
/** The datagram sent while the table is paused. */
const PAUSE_PORT = 9998;
/** Nothing listens here: the SYN is dropped by the kernel (no socket). */
const CLOSED_PORT = 7771;
const DROP_SRC_PORT = 42201;
/** How long the page may take to show what the pipeline already holds. */
const SHOW_MS = 10_000;

let stack: Stack;
let server: PodProcess | undefined;
let ui: OpenUiSession | undefined;
let base: string;
/** Wall-clock window around the traffic made before the observer restart. */
let before: { fromMs: number; toMs: number };

async function flows(req: RequestInit = {}): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({ number: 100_000n, ...req })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

function page(): Page {
  if (ui === undefined) throw new Error("browser not open");
  return ui.page;
}

/** Waits until `selector` matches at least one element, with a readable timeout error. */
async function shows(selector: string, what: string, timeoutMs = SHOW_MS): Promise<void> {
  await waitFor(async () => (await page().locator(selector).count()) > 0, {
    timeoutMs,
    intervalMs: 100,
    what,
  });
}

/** Texts of the flow table's rows as shown. */
async function rowTexts(): Promise<string[]> {
  return page().locator("[data-testid=flow-table] [data-testid=flow-row]").allInnerTexts();
}

/** Sends one TCP SYN from frontend to the closed port on backend (dropped: no socket). */
async function dropSyn(): Promise<void> {
  await stack.topology.exec("frontend", [
    "bash",
    "-c",
    `nc -z -w 1 -p ${DROP_SRC_PORT} ${stack.topology.pod("backend").ipv4} ${CLOSED_PORT} || true`,
  ]);
}

beforeAll(async () => {
  if (SKIP) return;
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "frontend" }, { name: "backend" }, { name: "db" }],
    nodes: [{ name: NODE, pods: ["frontend", "backend", "db"] }],
  });
  base = `http://${stack.observerAddr}`;
  const t = stack.topology;
  server = t.spawn("backend", [
    "bun",
    "-e",
    `Bun.serve({ hostname: "0.0.0.0", port: ${HTTP_PORT}, fetch: () => new Response("ok") }); console.log("listening");`,
  ]);
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).includes("listening"))
    throw new Error("backend server did not start");

  const fromMs = Date.now() - 1000;
  const curl = await t.exec("frontend", [
    "curl",
    "-sS",
    "--max-time",
    "5",
    `http://${t.pod("backend").ipv4}:${HTTP_PORT}/`,
  ]);
  expect(curl.stdout).toBe("ok");
  await t.exec("frontend", ["bash", "-c", `echo hi | nc -u -w1 ${t.pod("db").ipv4} ${UDP_PORT}`]);
  await t.exec("frontend", ["ping", "-c", "1", "-W", "2", t.pod("db").ipv4]);
  await dropSyn();
  // Everything above is in the observer before the browser opens.
  await waitFor(
    async () =>
      (
        await flows({
          whitelist: [create(FlowFilterSchema, { destinationPort: [String(CLOSED_PORT)] })],
        })
      ).length > 0,
    { timeoutMs: 20_000, what: "the dropped SYN in the observer" },
  );
  before = { fromMs, toMs: Date.now() + 1000 };
  ui = await openUi();
}, 90_000);

afterAll(async () => {
  if (ui !== undefined && ui.errors.length > 0)
    console.log(`page errors:\n${ui.errors.join("\n")}`);
  await ui?.close();
  server?.kill();
  await stack?.stop();
}, 60_000);

describe.skipIf(SKIP)("ui", () => {
  test("ui - the observer serves the page and the map shows the demo pods and their edges", async () => {
    const t0 = performance.now();
    const res = await page().goto(`${base}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-type"]).toContain("text/html");
    await shows("[data-testid=service-map]", "the service map");
    for (const pod of ["frontend", "backend", "db"]) {
      await shows(`[data-testid=map-node][data-node-id="demo/${pod}"]`, `node demo/${pod}`);
    }
    await shows(
      `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${HTTP_PORT}"]`,
      "the HTTP edge frontend -> backend",
    );
    await shows(
      `[data-testid=map-edge][data-edge-id="demo/frontend->demo/db:udp/${UDP_PORT}"]`,
      "the UDP edge frontend -> db",
    );
    const shownMs = performance.now() - t0;
    console.log(`ui: page load to map with 3 pods and edges: ${shownMs.toFixed(0)} ms`);
    expect(shownMs).toBeLessThan(SHOW_MS);
    const http = page().locator(
      `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${HTTP_PORT}"]`,
    );
    expect(await http.first().getAttribute("data-verdict")).toBe("FORWARDED");
    const status = page().locator("[data-testid=status]").first();
    await waitFor(async () => /nodes: 1 connected/.test(await status.innerText()), {
      timeoutMs: SHOW_MS,
      what: "the status bar showing the one connected node",
    });
    expect(await status.innerText()).toMatch(/lost events: \d+/);
    await ui?.screenshot("map");
  }, 30_000);

  test("ui - a dropped SYN shows on its edge as DROPPED with the kernel's reason", async () => {
    const sel = `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${CLOSED_PORT}"]`;
    await shows(sel, "the edge to the closed port");
    const edge = page().locator(sel).first();
    await waitFor(async () => (await edge.getAttribute("data-verdict")) === "DROPPED", {
      timeoutMs: SHOW_MS,
      what: "the edge colored DROPPED",
    });
    await edge.locator("button").first().click();
    await waitFor(async () => (await edge.getAttribute("class"))?.includes("selected") === true, {
      timeoutMs: SHOW_MS,
      what: "the dropped edge selected",
    });
    const details = await edge.locator("[data-testid=edge-details]").first().innerText();
    expect(details).toMatch(/dropped [1-9]/);
    const reasons = await edge.locator("[data-testid=drop-reasons]").first().innerText();
    expect(reasons).toMatch(/no.?socket|SOCKET_LOOKUP_FAILED/i);
    await ui?.screenshot("map-dropped-edge");
  }, 30_000);

  test("ui - pause holds new flows back from the table until resumed", async () => {
    const marked = async () => (await rowTexts()).filter((r) => r.includes(`:${PAUSE_PORT}`));
    expect(await marked()).toHaveLength(0);
    const pause = page().locator("[data-testid=pause]").first();
    await pause.click();
    expect(await pause.getAttribute("aria-pressed")).toBe("true");
    await stack.topology.exec("frontend", [
      "bash",
      "-c",
      `echo paused | nc -u -w1 ${stack.topology.pod("db").ipv4} ${PAUSE_PORT}`,
    ]);
    // The page got the datagram's flow (it says it holds it) but does not show it.
    await waitFor(async () => /Resume \([1-9]\d* held\)/.test(await pause.innerText()), {
      timeoutMs: SHOW_MS,
      what: "the pause button counting held flows",
    });
    expect(await marked()).toHaveLength(0);
    await pause.click();
    expect(await pause.getAttribute("aria-pressed")).toBe("false");
    await waitFor(async () => (await marked()).length > 0, {
      timeoutMs: SHOW_MS,
      what: `the held flow to port ${PAUSE_PORT} in the table after resuming`,
    });
  }, 30_000);

  test("ui - a filter narrows the table to exactly the flows GetFlows answers for it", async () => {
    await shows("[data-testid=flow-table] [data-testid=flow-row]", "rows in the flow table");
    const unfiltered = (await rowTexts()).length;
    const input = page().locator("[data-testid=filter-input]").first();
    await input.fill(`port=${CLOSED_PORT}`);
    await input.press("Enter");
    const want = await flows({
      whitelist: [
        create(FlowFilterSchema, { sourcePort: [String(CLOSED_PORT)] }),
        create(FlowFilterSchema, { destinationPort: [String(CLOSED_PORT)] }),
      ],
    });
    expect(want.length).toBeGreaterThan(0);
    expect(want.length).toBeLessThan(unfiltered);
    await waitFor(async () => (await rowTexts()).length === want.length, {
      timeoutMs: SHOW_MS,
      what: `${want.length} rows for port=${CLOSED_PORT}`,
    });
    const rows = await rowTexts();
    for (const r of rows) {
      expect(r).toContain(String(CLOSED_PORT));
      expect(r).toMatch(/frontend/);
      expect(r).toMatch(/backend/);
    }
    expect(rows.filter((r) => r.includes("DROPPED")).length).toBe(
      want.filter((f) => f.verdict === 2).length,
    );
    // Shareable: the filter is in the URL.
    expect(decodeURIComponent(page().url())).toContain(`port=${CLOSED_PORT}`);
    await page().locator("[data-testid=flow-row]").first().click();
    await shows("[data-testid=flow-json]", "the row's flow JSON");
    const json = await page().locator("[data-testid=flow-json]").first().innerText();
    expect(json).toContain(String(CLOSED_PORT));
    await ui?.screenshot("table-filtered");
  }, 30_000);

  test("ui - time travel shows flows from before an observer kill -9", async () => {
    const obs = stack.sup.get("observer");
    obs?.kill("SIGKILL");
    await obs?.exited;
    stack.restart("observer");
    await waitFor(
      async () =>
        (await fetch(`http://127.0.0.1:${stack.ops.observer}/readyz`).catch(() => undefined))
          ?.ok === true,
      { timeoutMs: 30_000, what: "observer ready after restart" },
    );
    // The same request after the restart: outside the window, so not in the rows below.
    const t = stack.topology;
    const again = await t.exec("frontend", [
      "curl",
      "-sS",
      "--max-time",
      "5",
      `http://${t.pod("backend").ipv4}:${HTTP_PORT}/`,
    ]);
    expect(again.stdout).toBe("ok");
    const toHttp = [create(FlowFilterSchema, { destinationPort: [String(HTTP_PORT)] })];
    await waitFor(
      async () =>
        (await flows({ whitelist: toHttp, since: timestampFromMs(before.toMs) })).length > 0,
      { timeoutMs: 20_000, what: "the request after the restart in the observer" },
    );
    const want = await flows({
      since: timestampFromMs(before.fromMs),
      until: timestampFromMs(before.toMs),
      whitelist: toHttp,
    });
    expect(want.length).toBeGreaterThan(0);

    const q = new URLSearchParams({
      since: new Date(before.fromMs).toISOString(),
      until: new Date(before.toMs).toISOString(),
      filter: `to-port=${HTTP_PORT}`,
    });
    await page().goto(`${base}/?${q}`);
    await shows("[data-testid=time-range]", "the time range picker");
    await waitFor(async () => (await rowTexts()).length === want.length, {
      timeoutMs: SHOW_MS,
      what: `${want.length} rows to port ${HTTP_PORT} from before the restart`,
    });
    for (const r of await rowTexts()) expect(r).toContain(String(HTTP_PORT));
    await shows(
      `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${HTTP_PORT}"]`,
      "the HTTP edge from history",
    );
    await ui?.screenshot("table-history");
  }, 60_000);

  test("ui - the page threw no uncaught errors", () => {
    expect(ui?.errors.filter((e) => e.startsWith("pageerror")) ?? []).toEqual([]);
  });
});
