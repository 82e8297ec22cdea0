/**
 * The page: filter bar, time range, status, service map and flow table. The flow stream
 * runs in a Web Worker (ui/src/worker.ts), which posts compact snapshots; the page keeps
 * them in a {@link PageModel} and draws the visible table rows only.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { storeAuth, storedAuth } from "./auth.ts";
import { FILTER_KEYS } from "./filter-keys.ts";
import { ServiceMap } from "./map.tsx";
import { PageModel } from "./model.ts";
import { authHeader, type FromWorker, type RowCells, type ToWorker } from "./protocol.ts";
import { TimeRange } from "./time-range.tsx";
import { queryString, readQuery, type ViewQuery } from "./url.ts";
import { rowWindow } from "./virtual.ts";

/** Height of one table row, px (the stylesheet's `.flows td`). */
export const ROW_PX = 22;
/** Rows asked for beyond those drawn on each side, so a short scroll has them already. */
const FETCH_MARGIN = 40;

/** Puts `q` into the address bar without reloading. */
export function writeQuery(q: ViewQuery): void {
  const s = queryString(q);
  if (s !== location.search) history.replaceState(null, "", `${location.pathname}${s}`);
}

/** The stream worker's script, named by the build in a meta tag of index.html. */
function startWorker(): Worker {
  const url =
    document.querySelector<HTMLMetaElement>("meta[name=periscope-worker]")?.content ??
    "/assets/worker.js";
  return new Worker(url, { type: "module" });
}

/** The whole page. */
export function App() {
  const model = useMemo(() => new PageModel(), []);
  const worker = useMemo(startWorker, []);
  const send = (m: ToWorker): void => worker.postMessage(m);
  const [query, setQuery] = useState<ViewQuery>(() => readQuery(location.search));
  const [filterText, setFilterText] = useState(query.filter);
  const [filterError, setFilterError] = useState("");
  const [version, setVersion] = useState(0);
  const [login, setLogin] = useState<{ message: string; refused: boolean } | undefined>();
  const [selected, setSelected] = useState<{ id: number; json?: string } | undefined>();
  const [auth, setAuth] = useState<string | undefined>(storedAuth);
  /** Bumped per sign-in, so the same credentials submitted again are tried again. */
  const [attempt, setAttempt] = useState(0);
  /** The number of the last start sent to the worker; its snapshots carry it back. */
  const run = useRef(0);
  const scroller = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 600 });

  useEffect(() => {
    worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      if (m.type === "snapshot") {
        if (m.run !== run.current) {
          // Posted before the worker took the newest start (old query or old credentials):
          // not shown, but acknowledged so the next one comes.
          send({ type: "ready" });
          return;
        }
        const el = scroller.current;
        // Keep the rows in view in place while new ones come in above them.
        const added = m.reset || model.newestId < 0 ? 0 : m.newestId - model.newestId;
        model.apply(m);
        if (el && el.scrollTop > 0 && added > 0) {
          el.scrollTop += added * ROW_PX;
          setScroll({ top: el.scrollTop, height: el.clientHeight });
        }
        setVersion(model.version);
      } else if (m.type === "flow") {
        setSelected((s) =>
          s?.id === m.id ? { id: m.id, json: m.json ?? "(this flow is no longer kept)" } : s,
        );
      } else if (m.type === "filter") {
        setFilterError(m.error ?? "");
        const filter = m.text.trim();
        if (m.error === undefined) setQuery((q) => (q.filter === filter ? q : { ...q, filter }));
      } else if (m.type === "auth") {
        setLogin({ message: m.message, refused: m.refused });
      }
    };
    return () => worker.terminate();
  }, [worker, model]);

  // The page drew the snapshot: the worker may send the next one.
  useEffect(() => {
    if (version > 0) send({ type: "ready" });
  }, [version]);

  useEffect(() => {
    writeQuery(query);
    setSelected(undefined);
    run.current++;
    send({ type: "start", run: run.current, query, ...(auth !== undefined ? { auth } : {}) });
  }, [query, auth, attempt]);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = (): void => setScroll({ top: el.scrollTop, height: el.clientHeight });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  /**
   * Forgets the stored credentials and everything shown with them; the stream restarts
   * without credentials, so the observer's Unauthenticated answer brings up the login.
   */
  const signOut = (): void => {
    storeAuth(undefined);
    // Snapshots already on their way are dropped from now on, not only from the restart.
    run.current++;
    model.apply({
      type: "snapshot",
      reset: true,
      newestId: -1,
      total: 0,
      counters: {
        ...model.counters,
        received: 0,
        rate: 0,
        lost: [],
        lostTotal: 0,
        held: 0,
        notShown: 0,
        nodes: 0,
        edges: 0,
      },
      stream: "signed out",
    });
    model.oldestMs = undefined;
    const el = scroller.current;
    if (el) el.scrollTop = 0;
    setScroll((s) => ({ ...s, top: 0 }));
    setSelected(undefined);
    setLogin(undefined);
    setAuth(undefined);
  };

  /** The worker checks the text (it holds the filter code); its answer applies it. */
  const applyFilter = (text: string): void => send({ type: "filter", text });

  const map = useMemo(
    () => <ServiceMap graph={model} onRelayout={() => send({ type: "relayout" })} />,
    [model.mapVersion],
  );
  const c = model.counters;
  const win = rowWindow(scroll.top, scroll.height, ROW_PX, model.total);
  const shown: { index: number; row: RowCells | undefined }[] = [];
  for (let i = win.start; i < win.end; i++) shown.push({ index: i, row: model.rowAt(i) });
  // The rows to ask the worker for: the window and a margin, from an id while scrolled.
  const fetchStart = Math.max(0, win.start - FETCH_MARGIN);
  const view: ToWorker = {
    type: "view",
    ...(scroll.top > 0 && model.newestId >= 0 ? { topId: model.newestId - fetchStart } : {}),
    count: win.end + FETCH_MARGIN - fetchStart,
  };
  const viewKey = JSON.stringify(view);
  useEffect(() => send(JSON.parse(viewKey) as ToWorker), [viewKey]);
  return (
    <div class="page">
      <header>
        <h1>Periscope</h1>
        <form
          class="filter"
          onSubmit={(e) => {
            e.preventDefault();
            applyFilter(filterText);
          }}
        >
          <input
            data-testid="filter-input"
            type="search"
            placeholder="namespace=demo verdict=DROPPED port=80 …"
            title={`key=value terms: ${FILTER_KEYS.join(", ")}`}
            value={filterText}
            onInput={(e) => setFilterText((e.target as HTMLInputElement).value)}
            onChange={(e) => applyFilter((e.target as HTMLInputElement).value)}
          />
          {filterError && (
            <span class="error" data-testid="filter-error">
              {filterError}
            </span>
          )}
        </form>
        <TimeRange query={query} oldestMs={model.oldestMs} onChange={setQuery} />
        <button
          type="button"
          data-testid="pause"
          aria-pressed={c.paused}
          onClick={() => send({ type: "pause", paused: !c.paused })}
        >
          {c.paused ? `Resume (${c.held} held)` : "Pause"}
        </button>
      </header>
      <StatusBar model={model} onSignOut={auth !== undefined ? signOut : undefined} />
      <main>
        {map}
        <section class="flows">
          <div
            class="table-scroll"
            data-testid="flow-scroll"
            ref={scroller}
            onScroll={(e) => {
              const el = e.currentTarget as HTMLDivElement;
              setScroll({ top: el.scrollTop, height: el.clientHeight });
            }}
          >
            <table data-testid="flow-table" data-rows={model.total}>
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Source</th>
                  <th>Destination</th>
                  <th>Type</th>
                  <th>Verdict</th>
                  <th>Summary</th>
                </tr>
              </thead>
              <tbody>
                {win.padTop > 0 && <tr class="spacer" style={{ height: `${win.padTop}px` }} />}
                {shown.map(({ index, row: r }) =>
                  r === undefined ? (
                    <tr key={index} class="pending">
                      <td colSpan={6} />
                    </tr>
                  ) : (
                    <tr
                      // Keyed by place, not by flow: as rows stream in, the same <tr>s get
                      // new text instead of being removed and created again.
                      key={index}
                      data-testid="flow-row"
                      data-verdict={r.verdict}
                      class={`${r.verdict.toLowerCase()}${selected?.id === r.id ? " selected" : ""}`}
                      onClick={() => {
                        setSelected({ id: r.id });
                        send({ type: "flow", id: r.id });
                      }}
                    >
                      <td>{r.time}</td>
                      <td>{r.source}</td>
                      <td>{r.destination}</td>
                      <td>{r.type}</td>
                      <td class="verdict">{r.verdict}</td>
                      <td>{r.summary}</td>
                    </tr>
                  ),
                )}
                {win.padBottom > 0 && (
                  <tr class="spacer" style={{ height: `${win.padBottom}px` }} />
                )}
              </tbody>
            </table>
          </div>
          {selected?.json !== undefined && (
            <aside class="json">
              <button type="button" onClick={() => setSelected(undefined)}>
                Close
              </button>
              <pre data-testid="flow-json">{selected.json}</pre>
            </aside>
          )}
        </section>
      </main>
      {login && (
        <Login
          message={login.message}
          refused={login.refused}
          onToken={(token) => {
            const header = authHeader(token);
            storeAuth(header);
            setLogin(undefined);
            setAuth(header);
            setAttempt((n) => n + 1);
          }}
        />
      )}
    </div>
  );
}

/** The token prompt shown when the observer answers Unauthenticated. */
function Login(props: { message: string; refused: boolean; onToken: (t: string) => void }) {
  const [token, setToken] = useState("");
  return (
    <div class="login-backdrop">
      <form
        class="login"
        data-testid="login"
        onSubmit={(e) => {
          e.preventDefault();
          props.onToken(token);
        }}
      >
        <h2>Sign in to the observer</h2>
        <p
          class={props.refused ? "error" : ""}
          data-testid="login-message"
          data-refused={props.refused ? "true" : "false"}
        >
          {props.refused
            ? `The observer refused these credentials: ${props.message}`
            : `The observer requires credentials: ${props.message}`}
        </p>
        <label>
          Bearer token (or a full <code>Basic …</code> / <code>Bearer …</code> header value){" "}
          <input
            data-testid="login-token"
            type="password"
            autocomplete="off"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" data-testid="login-submit">
          Sign in
        </button>
      </form>
    </div>
  );
}

/** Nodes, flows/s, lost events (with where), stream state; sign-out while signed in. */
function StatusBar(props: { model: PageModel; onSignOut?: () => void }) {
  const { counters: c, status } = props.model;
  const lost = c.lost.map(([where, n]) => `${n} at ${where}`).join(", ");
  return (
    <div class="status" data-testid="status">
      <span data-testid="status-nodes">
        nodes: {status ? `${status.connected} connected` : "?"}
        {status && status.unavailable > 0
          ? `, ${status.unavailable} unavailable (${status.unavailableNodes.join(", ")})`
          : ""}
      </span>
      <span data-testid="status-rate">
        flows/s: {c.rate.toFixed(1)}
        {status ? ` (observer, last minute: ${status.observerRate.toFixed(1)})` : ""}
      </span>
      <span data-testid="status-lost" class={c.lostTotal > 0 ? "error" : ""}>
        lost events: {c.lostTotal}
        {lost ? ` (${lost})` : ""}
      </span>
      {c.notShown > 0 && <span class="error">not shown while paused: {c.notShown}</span>}
      <span data-testid="status-stream">{props.model.stream}</span>
      <span>
        map: {c.nodes} nodes, {c.edges} edges
      </span>
      {props.onSignOut && (
        <button type="button" class="sign-out" data-testid="sign-out" onClick={props.onSignOut}>
          Sign out
        </button>
      )}
    </div>
  );
}
