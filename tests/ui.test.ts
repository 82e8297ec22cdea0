/**
 * The web UI end to end in headless Chromium (Debian's chromium, playwright-core)
 * against the whole pipeline: netns pods with real traffic, a real nats-server, the
 * services as processes, the page served by the observer. The map shows the pods and
 * their edges, a dropped SYN shows on its edge with the kernel's reason, a filter
 * narrows the table to exactly what GetFlows answers for it, flows from before an
 * observer kill -9 are shown again through the time range, windows typed into from/to
 * or picked by dragging the scrubber show exactly GetFlows' flows (table and map) and
 * survive a reload, the virtualised table keeps thousands of rows with few in the DOM,
 * and an observer that requires a bearer token gets one through the page's sign-in.
 * Screenshots go to test-artifacts/ui/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { subjects } from "@periscope/bus";
import { freePort, type PodProcess, type SupervisedProcess } from "@periscope/devstack";
import {
  EndpointSchema,
  type Flow,
  FlowBatchSchema,
  FlowFilterSchema,
  FlowSchema,
  type GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import type { Page } from "playwright-core";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";
import {
  ARTIFACTS_DIR as ARTIFACTS,
  chromiumUnavailable,
  type OpenUiSession,
  openUi,
} from "./ui/browser.ts";
import {
  dragScrubber,
  drawnRows,
  inputTime,
  localInput,
  mapEdgeIds,
  storedAuthorization,
  tableRows,
  typeWindow,
  type UrlWindow,
  urlWindow,
} from "./ui/page.ts";

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
/** The datagram made after the first window, found again by dragging the scrubber. */
const SCRUB_PORT = 9997;
/** The shortest typed window (the dragged one has its length). */
const SCRUB_SPAN_MS = 10_000;
/**
 * The burst for the virtualised table: flows frontend -> db:VIRT_PORT published on the
 * bus (1 ms apart, source ports from VIRT_SRC up, oldest first) as a collector would.
 */
const VIRT_PORT = 9996;
const VIRT_SRC = 31_000;
const VIRT_FLOWS = 2_200;
const VIRT_BATCH = 200;
/** The bearer token the second observer requires. */
const TOKEN = "ui-t0ken-for-the-sign-in-test";

let stack: Stack;
let server: PodProcess | undefined;
let ui: OpenUiSession | undefined;
let base: string;
/** Wall-clock window around the traffic made before the observer restart. */
let before: { fromMs: number; toMs: number };
/** A second observer on the same bus that requires {@link TOKEN}, and its files. */
let locked: { proc: SupervisedProcess; addr: string; ops: number; dir: string } | undefined;

/** Flows GetFlows answers for the window (no filter). */
function windowFlows(w: UrlWindow): Promise<Flow[]> {
  return flows({ since: timestampFromMs(w.since), until: timestampFromMs(w.until) });
}

/** The page's graph model (ui/src/graph.ts), as much of it as the map check needs. */
interface GraphModelLike {
  add(flow: Flow): unknown;
  readonly edges: ReadonlyMap<string, unknown>;
}
// Loaded by path: the UI's modules type-check with DOM settings of their own (ui/tsconfig.json).
const GRAPH_MODULE = resolve(ROOT, "ui/src/graph.ts");
const { GraphModel } = (await import(GRAPH_MODULE)) as {
  GraphModel: new () => GraphModelLike;
};

/** The map's edge ids for these flows, as the page's own graph model makes them. */
function edgesOf(fs: readonly Flow[]): string[] {
  const g = new GraphModel();
  for (const f of fs) g.add(f);
  return [...g.edges.keys()].sort();
}

/** The flow's L4 destination port, 0 when it has none. */
function dstPort(f: Flow): number {
  const p = f.l4?.protocol;
  return p?.case === "TCP" || p?.case === "UDP" ? p.value.destinationPort : 0;
}

/**
 * Waits until the page's table and map hold exactly the flows GetFlows answers for the
 * window in its URL (which must be `w`), and returns those flows.
 */
async function showsWindow(w: UrlWindow, what: string): Promise<Flow[]> {
  await waitFor(
    () => {
      const u = urlWindow(page());
      return u?.since === w.since && u.until === w.until;
    },
    { timeoutMs: SHOW_MS, intervalMs: 50, what: `${what} in the URL` },
  );
  await waitFor(
    async () =>
      /window: \d+ flows/.test(
        await page().locator("[data-testid=status-stream]").first().innerText(),
      ),
    { timeoutMs: SHOW_MS, intervalMs: 100, what: `${what} loaded` },
  );
  // A flow of the window may still reach the observer (pipeline latency under load) after
  // one answer and before the page's request: the two must agree once both have it.
  let want: Flow[] = [];
  let seen = -1;
  try {
    await waitFor(
      async () => {
        want = await windowFlows(w);
        seen = await tableRows(page());
        return seen === want.length;
      },
      { timeoutMs: SHOW_MS, intervalMs: 250, what: `the rows of ${what}` },
    );
  } catch (err) {
    throw new Error(`${what}: the table held ${seen} rows, GetFlows answered ${want.length}`, {
      cause: err,
    });
  }
  const edges = edgesOf(want);
  await waitFor(async () => (await mapEdgeIds(page())).join(" ") === edges.join(" "), {
    timeoutMs: SHOW_MS,
    intervalMs: 100,
    what: `the ${edges.length} edges of ${what} on the map`,
  });
  return want;
}

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

/**
 * Waits until the table holds `n` rows; on timeout the error says how many it held and
 * what the status bar said.
 */
async function holdsRows(n: number, what: string, timeoutMs = SHOW_MS): Promise<void> {
  let seen = -1;
  try {
    await waitFor(
      async () => {
        seen = await tableRows(page());
        return seen === n;
      },
      { timeoutMs, intervalMs: 100, what },
    );
  } catch (err) {
    const status = await page()
      .locator("[data-testid=status]")
      .first()
      .innerText({ timeout: 1000 })
      .catch(() => "?");
    throw new Error(`${what}: the table held ${seen} rows, not ${n} (status: ${status})`, {
      cause: err,
    });
  }
}

/**
 * Publishes the {@link VIRT_FLOWS} flows of the virtualised-table burst on the bus, timed
 * 1 ms apart ending now; returns the first one's time.
 */
function publishBurst(): number {
  const t = stack.topology;
  const fromMs = Date.now() - VIRT_FLOWS;
  for (let b = 0; b < VIRT_FLOWS; b += VIRT_BATCH) {
    const responses = Array.from({ length: Math.min(VIRT_BATCH, VIRT_FLOWS - b) }, (_, j) => {
      const i = b + j;
      const time = timestampFromMs(fromMs + i);
      return create(GetFlowsResponseSchema, {
        nodeName: NODE,
        time,
        responseTypes: {
          case: "flow",
          value: create(FlowSchema, {
            time,
            nodeName: NODE,
            verdict: Verdict.FORWARDED,
            IP: {
              source: t.pod("frontend").ipv4,
              destination: t.pod("db").ipv4,
              ipVersion: IPVersion.IPv4,
            },
            l4: {
              protocol: {
                case: "UDP",
                value: { sourcePort: VIRT_SRC + i, destinationPort: VIRT_PORT },
              },
            },
            source: create(EndpointSchema, { namespace: "demo", podName: "frontend" }),
            destination: create(EndpointSchema, { namespace: "demo", podName: "db" }),
            eventType: { type: 4 },
            Summary: "UDP",
          }),
        },
      });
    });
    stack.bus.nc.publish(
      subjects.flows(NODE),
      toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses })),
    );
  }
  return fromMs;
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
  locked = startLockedObserver(await freePort(), await freePort());
  ui = await openUi();
}, 90_000);

/** Uncaught errors of the sign-in page (its own browser context). */
const loginErrors: string[] = [];

/** A second observer on the stack's bus that refuses calls without {@link TOKEN}. */
function startLockedObserver(port: number, ops: number): NonNullable<typeof locked> {
  const dir = mkdtempSync(join(tmpdir(), "periscope-ui-login-"));
  writeFileSync(join(dir, "tokens"), `${TOKEN}\n`);
  const addr = `127.0.0.1:${port}`;
  const proc = stack.sup.start(
    "observer-login",
    ["bun", "run", resolve(ROOT, "services/observer/src/main.ts")],
    {
      cwd: ROOT,
      env: {
        PERISCOPE_NATS_URL: stack.natsUrl,
        // Its own durable on the flow stream, so the stack's observer still gets every flow.
        PERISCOPE_NODE_NAME: "ui-login-observer",
        PERISCOPE_LISTEN_ADDR: addr,
        PERISCOPE_OPS_ADDR: `127.0.0.1:${ops}`,
        PERISCOPE_BEARER_TOKEN_FILE: join(dir, "tokens"),
        PERISCOPE_LOG_LEVEL: "warn",
      },
    },
  );
  return { proc, addr, ops, dir };
}

afterAll(async () => {
  if (ui !== undefined && ui.errors.length > 0)
    console.log(`page errors:\n${ui.errors.join("\n")}`);
  await ui?.close();
  server?.kill();
  await stack?.stop();
  if (locked !== undefined) rmSync(locked.dir, { recursive: true, force: true });
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
    await waitFor(async () => (await pause.getAttribute("aria-pressed")) === "true", {
      timeoutMs: SHOW_MS,
      what: "the pause button pressed",
    });
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
    await waitFor(async () => (await pause.getAttribute("aria-pressed")) === "false", {
      timeoutMs: SHOW_MS,
      what: "the pause button released",
    });
    await waitFor(async () => (await marked()).length > 0, {
      timeoutMs: SHOW_MS,
      what: `the held flow to port ${PAUSE_PORT} in the table after resuming`,
    });
  }, 30_000);

  test("ui - a filter narrows the table to exactly the flows GetFlows answers for it", async () => {
    await shows("[data-testid=flow-table] [data-testid=flow-row]", "rows in the flow table");
    const unfiltered = await tableRows(page());
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
    await holdsRows(want.length, `${want.length} rows for port=${CLOSED_PORT}`);
    expect((await rowTexts()).length).toBe(want.length);
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
    await holdsRows(
      want.length,
      `${want.length} rows to port ${HTTP_PORT} from before the restart`,
    );
    expect((await rowTexts()).length).toBe(want.length);
    for (const r of await rowTexts()) expect(r).toContain(String(HTTP_PORT));
    await shows(
      `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${HTTP_PORT}"]`,
      "the HTTP edge from history",
    );
    await ui?.screenshot("table-history");
  }, 60_000);

  test("ui - from/to inputs and a scrubber drag pick windows: table and map hold exactly GetFlows' flows, the URL carries them, a reload keeps them", async () => {
    // The window of the traffic made before the restart, in whole seconds as typed; at least
    // SCRUB_SPAN_MS long, so the same length dragged over the datagram below covers it.
    const since = Math.floor(before.fromMs / 1000) * 1000;
    const a: UrlWindow = {
      since,
      until: Math.max(Math.ceil(before.toMs / 1000) * 1000, since + SCRUB_SPAN_MS),
    };
    // A datagram at a known time after that window.
    await waitFor(() => Date.now() > a.until + 1000, {
      timeoutMs: SCRUB_SPAN_MS + 2000,
      intervalMs: 50,
      what: "the typed window's end in the past",
    });
    const bFrom = Date.now();
    await stack.topology.exec("frontend", [
      "bash",
      "-c",
      `echo scrub | nc -u -w1 ${stack.topology.pod("db").ipv4} ${SCRUB_PORT}`,
    ]);
    const toScrub = [create(FlowFilterSchema, { destinationPort: [String(SCRUB_PORT)] })];
    await waitFor(
      async () => (await flows({ whitelist: toScrub, since: timestampFromMs(bFrom) })).length > 0,
      { timeoutMs: SHOW_MS, what: `the datagram to port ${SCRUB_PORT} in the observer` },
    );
    // The scrubber is dragged to 2 s after it (landing within 2 s of that, so the window
    // still holds it), ending in the past: nothing is still on its way into that window.
    const target = Math.ceil(Date.now() / 1000) + 2;
    await waitFor(() => Date.now() > (target + 1) * 1000, {
      timeoutMs: 6000,
      intervalMs: 50,
      what: "the scrub target in the past",
    });

    await page().goto(`${base}/`);
    await shows("[data-testid=time-from]", "the from input");
    await typeWindow(page(), a);
    const inA = await showsWindow(a, "the typed window");
    expect(inA.some((f) => dstPort(f) === HTTP_PORT)).toBe(true);
    expect(inA.some((f) => dstPort(f) === CLOSED_PORT && f.verdict === 2)).toBe(true);
    expect(inA.some((f) => dstPort(f) === SCRUB_PORT)).toBe(false);
    expect(await inputTime(page(), "time-from")).toBe(await localInput(page(), a.since));
    await ui?.screenshot("time-typed");

    const landed = await dragScrubber(page(), target);
    expect(Math.abs(landed - target)).toBeLessThanOrEqual(2);
    await waitFor(() => urlWindow(page())?.until === landed * 1000, {
      timeoutMs: SHOW_MS,
      intervalMs: 50,
      what: "the dragged window in the URL",
    });
    const b = urlWindow(page());
    if (b === undefined) throw new Error("no window in the URL after the drag");
    expect(b.until - b.since).toBe(a.until - a.since);
    const inB = await showsWindow(b, "the dragged window");
    expect(inB.some((f) => dstPort(f) === SCRUB_PORT)).toBe(true);
    expect(inB.some((f) => dstPort(f) === CLOSED_PORT)).toBe(false);
    const scrubRows = (await page().locator("[data-testid=flow-row]").allInnerTexts()).filter((r) =>
      r.includes(`:${SCRUB_PORT}`),
    );
    expect(scrubRows.length).toBe(inB.filter((f) => dstPort(f) === SCRUB_PORT).length);
    await ui?.screenshot("time-scrubbed");

    // Shared or reloaded, the URL brings the same window back.
    await page().reload();
    expect(urlWindow(page())).toEqual(b);
    expect((await showsWindow(b, "the reloaded window")).length).toBe(inB.length);
    expect(await inputTime(page(), "time-to")).toBe(await localInput(page(), b.until));

    // Looking at a past window, the scrubber's end keeps following the clock.
    const scrubMax = async (): Promise<number> =>
      Number(await page().locator("[data-testid=scrubber]").getAttribute("max"));
    const max0 = await scrubMax();
    await waitFor(async () => (await scrubMax()) >= max0 + 2, {
      timeoutMs: 6000,
      intervalMs: 100,
      what: "the scrubber's end following the clock",
    });
    expect(urlWindow(page())).toEqual(b);
  }, 45_000);

  test("ui - an observer that requires a token: the page asks for it, refuses a wrong one visibly, shows the map with the right one, and signing out forgets it and asks again", async () => {
    if (ui === undefined || locked === undefined) throw new Error("browser or observer missing");
    const lk = locked;
    const t0 = performance.now();
    const phases: string[] = [];
    const phase = (name: string) =>
      phases.push(`${name} ${(performance.now() - t0).toFixed(0)} ms`);
    await waitFor(
      async () => {
        if (lk.proc.exitCode() !== null) {
          throw new Error(`observer-login exited:\n${lk.proc.lines().slice(-20).join("\n")}`);
        }
        const r = await fetch(`http://127.0.0.1:${lk.ops}/readyz`).catch(() => undefined);
        return r?.ok === true;
      },
      { timeoutMs: 30_000, what: "the token-requiring observer ready" },
    );
    phase("observer ready");
    const ctx = await ui.browser.newContext({ viewport: { width: 1400, height: 900 } });
    const p = await ctx.newPage();
    p.on("pageerror", (e) => loginErrors.push(`pageerror: ${e.message}`));
    try {
      await p.goto(`http://${lk.addr}/`);
      phase("loaded");
      const login = p.locator("[data-testid=login]");
      const message = p.locator("[data-testid=login-message]").first();
      await login.first().waitFor({ state: "visible", timeout: SHOW_MS });
      expect(await message.innerText()).toMatch(/requires credentials/i);
      phase("asked");
      expect(await p.locator("[data-testid=map-node]").count()).toBe(0);
      await p.screenshot({ path: join(ARTIFACTS, "login.png"), fullPage: true });

      await p.locator("[data-testid=login-token]").first().fill("not-the-token");
      await p.locator("[data-testid=login-submit]").first().click();
      await waitFor(async () => /refused/i.test(await message.innerText().catch(() => "")), {
        timeoutMs: SHOW_MS,
        what: "the wrong token refused on the page",
      });
      expect(await message.getAttribute("class")).toContain("error");
      expect(await message.innerText()).toMatch(/invalid bearer token/i);
      phase("refused");
      expect(await p.locator("[data-testid=map-node]").count()).toBe(0);
      await p.screenshot({ path: join(ARTIFACTS, "login-refused.png"), fullPage: true });

      await p.locator("[data-testid=login-token]").first().fill(TOKEN);
      await p.locator("[data-testid=login-submit]").first().click();
      await login.first().waitFor({ state: "detached", timeout: SHOW_MS });
      // Fresh traffic, so the live view has the edge whatever the ring's newest flows were.
      const curl = await stack.topology.exec("frontend", [
        "curl",
        "-sS",
        "--max-time",
        "5",
        `http://${stack.topology.pod("backend").ipv4}:${HTTP_PORT}/`,
      ]);
      expect(curl.stdout).toBe("ok");
      const edge = `[data-testid=map-edge][data-edge-id="demo/frontend->demo/backend:tcp/${HTTP_PORT}"]`;
      await p.locator(edge).first().waitFor({ state: "attached", timeout: SHOW_MS });
      phase("map");
      expect(await p.locator("[data-testid=status-stream]").first().innerText()).toBe("live");
      await p.screenshot({ path: join(ARTIFACTS, "login-map.png"), fullPage: true });

      // Signing out forgets the token and everything shown with it; the observer asks again.
      const signOut = p.locator("[data-testid=sign-out]");
      const nodes = p.locator("[data-testid=map-node]");
      expect(await storedAuthorization(p)).toBe(`Bearer ${TOKEN}`);
      expect(await nodes.count()).toBeGreaterThan(0);
      expect(await tableRows(p)).toBeGreaterThan(0);
      await signOut.first().click();
      await login.first().waitFor({ state: "visible", timeout: SHOW_MS });
      expect(await message.innerText()).toMatch(/requires credentials/i);
      expect(await message.getAttribute("data-refused")).toBe("false");
      expect(await nodes.count()).toBe(0);
      expect(await tableRows(p)).toBe(0);
      expect(await drawnRows(p)).toBe(0);
      expect(await storedAuthorization(p)).toBeNull();
      expect(await signOut.count()).toBe(0);
      phase("signed out");
      await p.screenshot({ path: join(ARTIFACTS, "login-signed-out.png"), fullPage: true });
      await p.reload();
      await login.first().waitFor({ state: "visible", timeout: SHOW_MS });
      expect(await message.innerText()).toMatch(/requires credentials/i);
      expect(await nodes.count()).toBe(0);
      expect(await signOut.count()).toBe(0);
      phase("reload asks");
      expect(loginErrors).toEqual([]);
    } finally {
      console.log(`ui: sign-in: ${phases.join(", ")}`);
      await ctx.close();
    }
  }, 60_000);

  test("ui - the virtualised table holds thousands of rows with few in the DOM, scrolls to the oldest, and a row click still shows its JSON", async () => {
    await page().goto(`${base}/?filter=${encodeURIComponent(`to-port=${VIRT_PORT}`)}`);
    await waitFor(
      async () =>
        (await page().locator("[data-testid=status-stream]").first().innerText()) === "live",
      { timeoutMs: SHOW_MS, what: "the page following live" },
    );
    const seenBefore = (await stack.client.serverStatus({})).seenFlows;
    const t0 = performance.now();
    const fromMs = publishBurst();
    const toVirt = [create(FlowFilterSchema, { destinationPort: [String(VIRT_PORT)] })];
    // The page follows live: every flow published reaches the table (none lost on the way).
    const progress: string[] = [];
    let lastRows = -1;
    let inObserverMs = 0;
    const watch = setInterval(() => {
      void tableRows(page()).then((n) => {
        if (n !== lastRows) progress.push(`${(performance.now() - t0).toFixed(0)}ms:${n}`);
        lastRows = n;
      });
      if (inObserverMs === 0) {
        void stack.client.serverStatus({}).then((st) => {
          if (inObserverMs === 0 && st.seenFlows - seenBefore >= BigInt(VIRT_FLOWS)) {
            inObserverMs = performance.now() - t0;
          }
        });
      }
    }, 100);
    try {
      await holdsRows(VIRT_FLOWS, `the table holding all ${VIRT_FLOWS} flows`, 30_000);
    } finally {
      clearInterval(watch);
      console.log(
        `ui: burst in the observer after ${inObserverMs.toFixed(0)} ms; table rows over time: ${progress.join(" ")}`,
      );
    }
    const shownMs = performance.now() - t0;
    const want = await flows({ whitelist: toVirt, since: timestampFromMs(fromMs) });
    expect(want.length).toBe(VIRT_FLOWS);
    const drawn = await drawnRows(page());
    console.log(
      `ui: ${VIRT_FLOWS} flows published, all in the table after ${shownMs.toFixed(0)} ms, ${drawn} rows in the DOM`,
    );
    expect(drawn).toBeGreaterThan(0);
    expect(drawn).toBeLessThan(VIRT_FLOWS / 20);
    const ports = async () =>
      (await page().locator("[data-testid=flow-row]").allInnerTexts()).map((r) =>
        Number(/frontend:(\d+)/.exec(r)?.[1] ?? Number.NaN),
      );
    // Newest first: the top row is the last flow published.
    const newest = VIRT_SRC + VIRT_FLOWS - 1;
    expect((await ports())[0]).toBe(newest);
    expect(Math.min(...(await ports()))).toBeGreaterThan(newest - drawn);
    await page()
      .locator("[data-testid=flow-scroll]")
      .first()
      .evaluate((el) => {
        el.scrollTop = el.scrollHeight;
      });
    await waitFor(async () => (await ports()).at(-1) === VIRT_SRC, {
      timeoutMs: SHOW_MS,
      what: `the oldest row (source port ${VIRT_SRC}) last after scrolling to the bottom`,
    });
    const bottom = await ports();
    expect(Math.max(...bottom)).toBeLessThan(VIRT_SRC + bottom.length);
    expect(await drawnRows(page())).toBeLessThan(VIRT_FLOWS / 20);
    await page()
      .locator("[data-testid=flow-row]", { hasText: `frontend:${VIRT_SRC}` })
      .first()
      .click();
    await shows("[data-testid=flow-json]", "the oldest row's flow JSON");
    const json = await page().locator("[data-testid=flow-json]").first().innerText();
    expect(json).toContain(`"sourcePort": ${VIRT_SRC}`);
    expect(json).toContain(`"destinationPort": ${VIRT_PORT}`);
    await ui?.screenshot("table-virtualised");
  }, 45_000);

  test("ui - the page threw no uncaught errors", () => {
    expect(ui?.errors.filter((e) => e.startsWith("pageerror")) ?? []).toEqual([]);
    expect(loginErrors).toEqual([]);
  });
});
