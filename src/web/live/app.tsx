/**
 * The live page: what KSM is doing on this host. Readings arrive from the
 * server as server-sent events (/events); the page only reads, it has no
 * control that acts on the host.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { formatBytes, formatCount, formatDuration } from '../../simulate/units.ts';
import type { LiveHello, LiveProcess, LiveTick, LiveView } from '../../tools/status/live-protocol.ts';
import { Chart, type ChartProps, type ChartSeries } from './chart.tsx';
import { LiveStore } from './store.ts';

type Connection = 'connecting' | 'live' | 'reconnecting' | 'failed';

const RANGES: ReadonlyArray<readonly [string, number | null]> = [
  ['5 min', 300],
  ['1 hour', 3600],
  ['all', null],
];

const PAGE_SERIES: readonly ChartSeries[] = [
  { name: 'pages_sharing', label: 'pages_sharing', color: '#2a7ab0' },
  { name: 'pages_shared', label: 'pages_shared', color: '#1b9e77' },
  { name: 'pages_unshared', label: 'pages_unshared', color: '#7570b3' },
  { name: 'pages_volatile', label: 'pages_volatile', color: '#e7298a' },
  { name: 'ksm_zero_pages', label: 'ksm_zero_pages', color: '#a6761d' },
];

const percent = (v: number): string => `${v < 10 ? v.toFixed(1) : v.toFixed(0)} %`;
/** Three significant digits under a second (a scan of 21.5 ms and one of 22 ms are told apart). */
const seconds = (v: number): string =>
  v < 1 ? `${Number((v * 1000).toPrecision(3))} ms` : formatDuration(v * 1000);
const plural = (n: number, one: string, many: string): string => `${formatCount(n)} ${n === 1 ? one : many}`;
const bytes = (v: number): string => formatBytes(v);
const pages = (v: number): string => formatCount(v);

/** Binary steps for a byte axis: 256 KiB, 512 KiB, 1 MiB, … rather than 976.6 KiB. */
const BYTE_STEPS = [0, 1, 2, 3, 4, 5].flatMap((k) =>
  [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * 1024 ** k),
);

const CHARTS = [
  {
    id: 'chart-profit',
    title: 'Memory saved (general_profit)',
    series: [{ name: 'general_profit', label: 'general_profit', color: '#2a7ab0' }],
    format: bytes,
    incrs: BYTE_STEPS,
  },
  { id: 'chart-pages', title: 'KSM pages', series: PAGE_SERIES, format: pages },
  {
    id: 'chart-cpu',
    title: 'ksmd CPU (of one CPU)',
    series: [{ name: 'ksmd_cpu_percent', label: 'ksmd CPU', color: '#d95f02' }],
    format: percent,
  },
  {
    id: 'chart-scan',
    title: 'Full-scan time',
    series: [{ name: 'full_scan_seconds', label: 'last full scan', color: '#66a61e' }],
    format: seconds,
  },
] as const satisfies ReadonlyArray<Pick<ChartProps, 'id' | 'title' | 'series' | 'format' | 'incrs'>>;

function useLive(): { store: LiveStore; version: number; connection: Connection; problem: string | null } {
  const store = useMemo(() => new LiveStore(Date.now()), []);
  const [version, setVersion] = useState(0);
  const [connection, setConnection] = useState<Connection>('connecting');
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    const source = new EventSource('events');
    source.addEventListener('hello', (e) => {
      try {
        store.applyHello(JSON.parse((e as MessageEvent<string>).data) as LiveHello);
        setConnection('live');
        setProblem(null);
      } catch (err) {
        setConnection('failed');
        setProblem((err as Error).message);
        source.close();
      }
      setVersion((v) => v + 1);
    });
    source.addEventListener('tick', (e) => {
      store.applyTick(JSON.parse((e as MessageEvent<string>).data) as LiveTick);
      setVersion((v) => v + 1);
    });
    source.onerror = () => {
      // EventSource reconnects by itself (the server's retry: line) unless the server refused outright.
      setConnection(source.readyState === EventSource.CLOSED ? 'failed' : 'reconnecting');
    };
    return () => source.close();
  }, [store]);
  return { store, version, connection, problem };
}

const RUN_STATE: Readonly<Record<number, string>> = {
  0: 'stopped (run = 0): ksmd merges nothing',
  1: 'running (run = 1): ksmd is merging',
  2: 'unmerging (run = 2): every KSM page is split again',
};

function Header(props: { view: LiveView | undefined; connection: Connection; intervalMs: number }) {
  const { view, connection } = props;
  const state =
    connection === 'live'
      ? `live, a reading every ${props.intervalMs / 1000} s`
      : connection === 'connecting'
        ? 'connecting…'
        : connection === 'reconnecting'
          ? 'lost the server, reconnecting…'
          : 'disconnected';
  return (
    <header>
      <h1>KSM on this host</h1>
      <p class="sub">
        {view === undefined ? '' : `Linux ${view.kernel} · `}
        {view?.run === null || view === undefined ? '' : `${RUN_STATE[view.run] ?? `run = ${view.run}`} · `}
        <span class={`conn conn-${connection}`} data-connection={connection}>
          {state}
        </span>
      </p>
    </header>
  );
}

function Visibility(props: { view: LiveView }) {
  const v = props.view.visibility;
  if (v.hidden.length === 0) {
    return v.root ? null : (
      <p class="note">Running as uid {v.uid ?? '?'}: nothing is hidden from this user.</p>
    );
  }
  return (
    <div class="banner" role="note" id="visibility">
      <strong>
        {v.root
          ? 'Some readings failed:'
          : `Running as uid ${v.uid ?? '?'}, not root: some of the host is hidden.`}
      </strong>
      <ul>
        {v.hidden.map((h) => (
          <li key={h}>{h}</li>
        ))}
      </ul>
      {v.root ? null : <p>Run ksmkit status --serve as root to see every process.</p>}
    </div>
  );
}

function Tiles(props: { store: LiveStore; view: LiveView }) {
  const { store, view } = props;
  const profit = store.latest('general_profit');
  const sharing = store.latest('pages_sharing');
  const shared = store.latest('pages_shared');
  const cpu = store.latest('ksmd_cpu_percent');
  const scan = view.scanTime;
  const tiles: Array<[string, string, string]> = [
    [
      'memory saved',
      profit === null ? '—' : formatBytes(profit),
      'general_profit, net of KSM’s own metadata',
    ],
    [
      'sharing',
      sharing === null || shared === null || shared === 0 ? '—' : `${(sharing / shared).toFixed(1)}×`,
      'pages_sharing / pages_shared: extra mappings per KSM page',
    ],
    ['ksmd CPU', cpu === null ? '—' : percent(cpu), 'of one CPU, from /proc/<ksmd>/schedstat'],
    [
      'full scan',
      scan.measuredSeconds !== null
        ? seconds(scan.measuredSeconds)
        : scan.expectedSeconds !== null
          ? `≈ ${seconds(scan.expectedSeconds)}`
          : '—',
      scan.measuredSeconds !== null ? 'the last one, as measured' : 'expected at the settings in force',
    ],
  ];
  return (
    <div class="tiles">
      {tiles.map(([label, value, hint]) => (
        <div class="tile" key={label} title={hint}>
          <div class="tile-label">{label}</div>
          <div class="tile-value" data-tile={label}>
            {value}
          </div>
          <div class="tile-hint">{hint}</div>
        </div>
      ))}
    </div>
  );
}

function ScanTime(props: { view: LiveView }) {
  const s = props.view.scanTime;
  const how =
    s.pagesPerScan === null || s.batchesPerScan === null || s.sleepPerBatchMs === null
      ? null
      : `${plural(s.pagesPerScan, 'page', 'pages')}${s.pagesSource === 'measured' ? ' (the last full scan)' : ' (from rmap items)'} ` +
        `in ${plural(s.batchesPerScan, 'batch', 'batches')} of pages_to_scan ${s.pagesToScan}, each followed by a ` +
        `${s.sleepPerBatchMs.toFixed(0)} ms sleep` +
        (s.cpuNsPerPage === null
          ? ''
          : `, plus ksmd’s ${(s.cpuNsPerPage / 1000).toFixed(2)} µs of CPU a page`);
  return (
    <div class="scan" id="scan-time">
      <p>
        <strong>A full scan at these settings: </strong>
        {s.expectedSeconds === null ? 'cannot be worked out yet' : `≈ ${seconds(s.expectedSeconds)}`}
        {s.measuredSeconds === null ? '' : `; the last one took ${seconds(s.measuredSeconds)}`}
      </p>
      {how === null ? null : <p class="muted">{how}.</p>}
      {s.notes.length === 0 ? null : (
        <ul class="muted">
          {s.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Settings(props: { view: LiveView }) {
  return (
    <section class="panel" aria-labelledby="settings-title">
      <h2 id="settings-title">Settings in force</h2>
      <ScanTime view={props.view} />
      <div class="scroll">
        <table class="settings">
          <tbody>
            {props.view.settings.map((s) => (
              <tr key={s.name}>
                <th scope="row">{s.name}</th>
                <td class="num">{s.value ?? 'not in this kernel'}</td>
                <td class="muted">{s.meaning}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

type SortKey = 'pid' | 'cmdline' | 'mergingPages' | 'rmapItems' | 'zeroPages' | 'profit';

const COLUMNS: ReadonlyArray<readonly [SortKey, string, boolean]> = [
  ['pid', 'PID', true],
  ['cmdline', 'command', false],
  ['mergingPages', 'merging pages', true],
  ['rmapItems', 'rmap items', true],
  ['zeroPages', 'zero pages', true],
  ['profit', 'profit', true],
];

function compareBy(key: SortKey, descending: boolean): (a: LiveProcess, b: LiveProcess) => number {
  const sign = descending ? -1 : 1;
  return (a, b) => {
    const x = a[key];
    const y = b[key];
    if (x === null && y === null) return a.pid - b.pid;
    if (x === null) return 1;
    if (y === null) return -1;
    const c = typeof x === 'string' ? x.localeCompare(String(y)) : x - (y as number);
    return c === 0 ? a.pid - b.pid : sign * c;
  };
}

const yesNo = (v: boolean | null): string => (v === null ? '—' : v ? 'yes' : 'no');
const num = (v: number | null, f: (n: number) => string = String): string => (v === null ? '—' : f(v));

function Processes(props: { view: LiveView }) {
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({
    key: 'profit',
    descending: true,
  });
  const rows = [...props.view.processes].sort(compareBy(sort.key, sort.descending));
  const { view } = props;
  const click = (key: SortKey): void =>
    setSort((s) =>
      s.key === key ? { key, descending: !s.descending } : { key, descending: key !== 'cmdline' },
    );
  return (
    <section class="panel" aria-labelledby="processes-title">
      <h2 id="processes-title">Processes using KSM, by {COLUMNS.find((c) => c[0] === sort.key)![1]}</h2>
      {rows.length === 0 ? (
        <p class="muted">
          None uses KSM (none is mergeable or has merged pages). <code>ksmkit exec CMD</code> starts one with
          KSM on.
        </p>
      ) : (
        <div class="scroll">
          <table class="processes" id="processes">
            <thead>
              <tr>
                {COLUMNS.map(([key, label, numeric]) => (
                  <th
                    key={key}
                    scope="col"
                    class={numeric ? 'num' : ''}
                    aria-sort={sort.key === key ? (sort.descending ? 'descending' : 'ascending') : 'none'}
                  >
                    <button type="button" onClick={() => click(key)}>
                      {label}
                      {sort.key === key ? (sort.descending ? ' ▼' : ' ▲') : ''}
                    </button>
                  </th>
                ))}
                <th scope="col">mergeable</th>
                <th scope="col">merge_any</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((p) => (
                <tr key={p.pid} data-pid={p.pid}>
                  <td class="num">{p.pid}</td>
                  <td title={p.cmdline}>
                    <span class="cmd">{p.cmdline}</span>
                  </td>
                  <td class="num">{num(p.mergingPages)}</td>
                  <td class="num">{num(p.rmapItems)}</td>
                  <td class="num">{num(p.zeroPages)}</td>
                  <td class="num">{num(p.profit, formatBytes)}</td>
                  <td>{yesNo(p.mergeable)}</td>
                  <td>{yesNo(p.mergeAny)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {view.processesUsingKsm > view.processes.length ? (
        <p class="muted">
          The {view.processes.length} with the most profit of {view.processesUsingKsm} processes using KSM.
        </p>
      ) : null}
    </section>
  );
}

function Marks(props: { store: LiveStore }) {
  const marks = props.store.marks.slice(-8).reverse();
  if (marks.length === 0) return null;
  return (
    <section class="panel marks" aria-labelledby="marks-title">
      <h2 id="marks-title">Settings changes (dashed lines on the charts)</h2>
      <ul>
        {marks.map((m) => (
          <li key={`${m.timeMs}${m.text}`}>
            <time dateTime={new Date(m.timeMs).toISOString()}>{new Date(m.timeMs).toLocaleTimeString()}</time>{' '}
            {m.text}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function App() {
  const { store, version, connection, problem } = useLive();
  const [range, setRange] = useState<number | null>(null);
  const view = store.view;
  return (
    <main>
      <Header view={view} connection={connection} intervalMs={store.intervalMs} />
      {problem === null ? null : <div class="banner error">{problem}</div>}
      {view?.error == null ? null : <div class="banner error">The last reading failed: {view.error}</div>}
      {view !== undefined && !view.available ? (
        <div class="banner error">KSM is not in this kernel: {view.unavailableReason}</div>
      ) : null}
      {view === undefined ? null : <Visibility view={view} />}
      {view === undefined ? null : <Tiles store={store} view={view} />}
      <fieldset class="range">
        <legend class="muted">Since the page opened (dotted line) and the server’s last hour:</legend>
        {RANGES.map(([label, s]) => (
          <button type="button" key={label} aria-pressed={range === s} onClick={() => setRange(s)}>
            {label}
          </button>
        ))}
      </fieldset>
      <div class="charts">
        {CHARTS.map((c) => (
          <Chart key={c.id} {...c} store={store} version={version} rangeS={range} />
        ))}
      </div>
      <Marks store={store} />
      {view === undefined ? null : (
        <div class="columns">
          <Processes view={view} />
          <Settings view={view} />
        </div>
      )}
      <footer class="muted">
        ksmkit status --serve · read-only · readings from /sys/kernel/mm/ksm, /proc/PID/ksm_stat and
        /proc/&lt;ksmd&gt;/schedstat · <a href="metrics">/metrics</a> for Prometheus
      </footer>
    </main>
  );
}
