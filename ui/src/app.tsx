/**
 * The page: filter bar, time range, status, service map and flow table. Data comes from
 * the observer's Observer service over Connect (same origin), through the generated client.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { type Flow, FlowSchema } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import {
  GetFlowsRequestSchema,
  Observer,
  type ServerStatusResponse,
} from "@periscope/proto/src/gen/observer/observer_pb.ts";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { buildWhitelist, FILTER_KEYS, FilterError } from "./filter.ts";
import { flowCells } from "./format.ts";
import { ServiceMap } from "./map.tsx";
import { FlowStore } from "./store.ts";
import { readQuery, type ViewQuery, writeQuery } from "./url.ts";

const client = createClient(
  Observer,
  createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true }),
);

/** Rows drawn in the table. */
const SHOWN_ROWS = 200;
/** How often the view redraws from the store, ms. */
const TICK_MS = 250;

/** Streams flows for `query` into `store` until `signal` aborts; reconnects when live. */
async function runStream(
  store: FlowStore,
  query: ViewQuery,
  signal: AbortSignal,
  onState: (s: string) => void,
): Promise<void> {
  const whitelist = buildWhitelist(query.filter);
  const history = query.since !== undefined;
  const req = create(GetFlowsRequestSchema, {
    whitelist,
    follow: !history,
    ...(history
      ? {
          since: timestampFromMs(query.since as number),
          ...(query.until !== undefined ? { until: timestampFromMs(query.until) } : {}),
        }
      : { number: 200n }),
  });
  while (!signal.aborted) {
    try {
      onState(history ? "loading window" : "live");
      for await (const res of client.getFlows(req, { signal })) {
        const r = res.responseTypes;
        if (r.case === "flow") store.onFlow(r.value);
        else if (r.case === "lostEvents") store.onLost(r.value);
      }
      if (history) {
        onState(`window: ${store.received} flows`);
        return;
      }
    } catch (err) {
      if (signal.aborted) return;
      onState(`disconnected: ${err instanceof Error ? err.message : String(err)}; retrying`);
    }
    await new Promise((r) => setTimeout(r, 1000));
    // Resume where the stream broke off: from the newest flow seen (its repeats are skipped).
    req.number = 0n;
    req.since = timestampFromMs(store.lastTimeMs || Date.now());
  }
}

/** The whole page. */
export function App() {
  const store = useMemo(() => new FlowStore(), []);
  const [query, setQuery] = useState<ViewQuery>(() => readQuery(location.search));
  const [filterText, setFilterText] = useState(query.filter);
  const [filterError, setFilterError] = useState("");
  const [streamState, setStreamState] = useState("connecting");
  const [, setTick] = useState(0);
  const [selected, setSelected] = useState<Flow | undefined>();
  const [status, setStatus] = useState<ServerStatusResponse | undefined>();
  const seen = useRef(-1);

  useEffect(() => {
    const ac = new AbortController();
    store.reset();
    writeQuery(query);
    runStream(store, query, ac.signal, setStreamState).catch((err: unknown) =>
      setStreamState(`error: ${err instanceof Error ? err.message : String(err)}`),
    );
    return () => ac.abort();
  }, [query, store]);

  useEffect(() => {
    const t = setInterval(() => {
      if (store.version === seen.current) return;
      seen.current = store.version;
      if (!store.paused && query.since === undefined) store.graph.evictIdle(Date.now());
      setTick((n) => n + 1);
    }, TICK_MS);
    return () => clearInterval(t);
  }, [store, query]);

  useEffect(() => {
    let live = true;
    const poll = async (): Promise<void> => {
      try {
        const s = await client.serverStatus({});
        if (live) setStatus(s);
      } catch {
        if (live) setStatus(undefined);
      }
    };
    void poll();
    const t = setInterval(poll, 2000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, []);

  const applyFilter = (text: string): void => {
    try {
      buildWhitelist(text);
      setFilterError("");
      setQuery({ ...query, filter: text.trim() });
    } catch (err) {
      setFilterError(err instanceof FilterError ? err.message : String(err));
    }
  };

  if (store.graph.needsLayout()) store.graph.layout();
  const rows = store.newest(SHOWN_ROWS);
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
        <TimeRange query={query} onChange={setQuery} />
        <button
          type="button"
          data-testid="pause"
          aria-pressed={store.paused}
          onClick={() => {
            store.setPaused(!store.paused);
            setTick((n) => n + 1);
          }}
        >
          {store.paused ? `Resume (${store.held.length} held)` : "Pause"}
        </button>
      </header>
      <StatusBar store={store} status={status} streamState={streamState} />
      <main>
        <ServiceMap graph={store.graph} version={store.graph.version} />
        <section class="flows">
          <table data-testid="flow-table">
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
              {rows.map((f) => {
                const c = flowCells(f);
                return (
                  <tr
                    key={f.uuid || `${c.time}${c.source}${c.summary}`}
                    data-testid="flow-row"
                    data-verdict={c.verdict}
                    class={`${c.verdict.toLowerCase()}${selected === f ? " selected" : ""}`}
                    onClick={() => setSelected(f)}
                  >
                    <td>{c.time}</td>
                    <td>{c.source}</td>
                    <td>{c.destination}</td>
                    <td>{c.type}</td>
                    <td class="verdict">{c.verdict}</td>
                    <td>{c.summary}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {selected && (
            <aside class="json">
              <button type="button" onClick={() => setSelected(undefined)}>
                Close
              </button>
              <pre data-testid="flow-json">{flowJson(selected)}</pre>
            </aside>
          )}
        </section>
      </main>
    </div>
  );
}

/** The flow as protobuf JSON (bigint-safe fallback when an Any cannot be resolved). */
function flowJson(f: Flow): string {
  try {
    return toJsonString(FlowSchema, f, { prettySpaces: 2 });
  } catch {
    return JSON.stringify(f, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2);
  }
}

/** Nodes, flows/s, lost events (with where), stream state. */
function StatusBar(props: {
  store: FlowStore;
  status: ServerStatusResponse | undefined;
  streamState: string;
}) {
  const { store, status } = props;
  const lost = [...store.lost.entries()].map(([where, n]) => `${n} at ${where}`).join(", ");
  return (
    <div class="status" data-testid="status">
      <span data-testid="status-nodes">
        nodes: {status ? `${status.numConnectedNodes ?? 0} connected` : "?"}
        {status && (status.numUnavailableNodes ?? 0) > 0
          ? `, ${status.numUnavailableNodes} unavailable (${status.unavailableNodes.join(", ")})`
          : ""}
      </span>
      <span data-testid="status-rate">
        flows/s: {store.rate().toFixed(1)}
        {status ? ` (observer ${status.flowsRate.toFixed(1)})` : ""}
      </span>
      <span data-testid="status-lost" class={store.lostTotal() > 0 ? "error" : ""}>
        lost events: {store.lostTotal()}
        {lost ? ` (${lost})` : ""}
      </span>
      {store.notShown > 0 && <span class="error">not shown while paused: {store.notShown}</span>}
      <span data-testid="status-stream">{props.streamState}</span>
      <span>
        map: {store.graph.nodes.size} nodes, {store.graph.edges.size} edges
      </span>
    </div>
  );
}

/** Local `datetime-local` value of epoch ms. */
function toLocalInput(ms: number | undefined): string {
  if (ms === undefined) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

/** From/to pickers, a scrubber over the last hour and a Live button. */
function TimeRange(props: { query: ViewQuery; onChange: (q: ViewQuery) => void }) {
  const { query, onChange } = props;
  const [from, setFrom] = useState(toLocalInput(query.since));
  const [to, setTo] = useState(toLocalInput(query.until));
  useEffect(() => {
    setFrom(toLocalInput(query.since));
    setTo(toLocalInput(query.until));
  }, [query]);
  const span = query.since !== undefined ? (query.until ?? Date.now()) - query.since : 5 * 60_000;
  const ago = query.until !== undefined ? Math.round((Date.now() - query.until) / 60_000) : 0;
  return (
    <form
      class="time"
      data-testid="time-range"
      onSubmit={(e) => {
        e.preventDefault();
        const since = from ? new Date(from).getTime() : undefined;
        const until = to ? new Date(to).getTime() : undefined;
        if (since === undefined) onChange({ filter: query.filter });
        else onChange({ filter: query.filter, since, ...(until !== undefined ? { until } : {}) });
      }}
    >
      <label>
        from{" "}
        <input
          name="since"
          type="datetime-local"
          step="1"
          value={from}
          onInput={(e) => setFrom((e.target as HTMLInputElement).value)}
        />
      </label>
      <label>
        to{" "}
        <input
          name="until"
          type="datetime-local"
          step="1"
          value={to}
          onInput={(e) => setTo((e.target as HTMLInputElement).value)}
        />
      </label>
      <button type="submit">Show</button>
      <input
        data-testid="time-scrubber"
        type="range"
        min="0"
        max="60"
        step="1"
        title="window end, minutes ago"
        value={60 - ago}
        onChange={(e) => {
          const back = 60 - Number((e.target as HTMLInputElement).value);
          const until = Date.now() - back * 60_000;
          onChange({ filter: query.filter, since: until - span, until });
        }}
      />
      <button
        type="button"
        data-testid="live"
        disabled={query.since === undefined}
        onClick={() => onChange({ filter: query.filter })}
      >
        Live
      </button>
    </form>
  );
}
