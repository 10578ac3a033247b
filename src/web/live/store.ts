/**
 * The page's copy of the readings: the server's last hour as it was when the
 * page connected, then every reading since the page opened, as columns ready
 * for uPlot (times in seconds). A reconnect brings the server's hour again; the
 * page keeps what it saw before that hour began, so nothing seen is lost.
 */
import {
  LIVE_PROTOCOL_VERSION,
  LIVE_SERIES,
  type LiveHello,
  type LiveMark,
  type LivePoint,
  type LiveSeriesName,
  type LiveTick,
  type LiveView,
} from '../../tools/status/live-protocol.ts';

/** Two days at one reading a second: the page of someone who left it open does not grow without end. */
const MAX_POINTS = 172_800;

export interface Columns {
  /** Seconds since the epoch. */
  readonly times: number[];
  readonly values: Record<LiveSeriesName, Array<number | null>>;
}

function emptyColumns(): Columns {
  const values = {} as Record<LiveSeriesName, Array<number | null>>;
  for (const name of LIVE_SERIES) values[name] = [];
  return { times: [], values };
}

export class LiveStore {
  columns: Columns = emptyColumns();
  marks: LiveMark[] = [];
  view: LiveView | undefined;
  intervalMs = 2000;
  historyMs = 3_600_000;
  readonly openedAtMs: number;

  constructor(openedAtMs: number) {
    this.openedAtMs = openedAtMs;
  }

  /** The server's series order may differ from ours (another version): map by name. */
  private seriesIndex: Array<number | undefined> = LIVE_SERIES.map((_, i) => i);

  applyHello(hello: LiveHello): void {
    if (hello.version !== LIVE_PROTOCOL_VERSION) {
      throw new Error(
        `the server speaks version ${hello.version} of the live protocol, this page ${LIVE_PROTOCOL_VERSION}: reload the page`,
      );
    }
    this.intervalMs = hello.intervalMs;
    this.historyMs = hello.historyMs;
    this.seriesIndex = LIVE_SERIES.map((name) => {
      const i = hello.series.indexOf(name);
      return i < 0 ? undefined : i;
    });
    const firstServerS =
      hello.history.length > 0 ? hello.history[0]!.timeMs / 1000 : Number.POSITIVE_INFINITY;
    const kept = this.columns.times.findIndex((t) => t >= firstServerS);
    const keep = kept < 0 ? this.columns.times.length : kept;
    const next = emptyColumns();
    next.times.push(...this.columns.times.slice(0, keep));
    for (const name of LIVE_SERIES) next.values[name].push(...this.columns.values[name].slice(0, keep));
    this.columns = next;
    for (const p of hello.history) this.push(p);
    const firstMarkMs = hello.marks[0]?.timeMs ?? Number.POSITIVE_INFINITY;
    this.marks = [...this.marks.filter((m) => m.timeMs < firstMarkMs), ...hello.marks];
    this.view = hello.view;
  }

  applyTick(tick: LiveTick): void {
    this.push(tick.point);
    this.marks.push(...tick.marks);
    this.view = tick.view;
  }

  private push(p: LivePoint): void {
    const c = this.columns;
    const t = p.timeMs / 1000;
    // A reading can repeat across a reconnect: keep the newest value for one time.
    if (c.times.length > 0 && t <= c.times[c.times.length - 1]!) return;
    c.times.push(t);
    LIVE_SERIES.forEach((name, i) => {
      const at = this.seriesIndex[i];
      c.values[name].push(at === undefined ? null : (p.values[at] ?? null));
    });
    if (c.times.length > MAX_POINTS) {
      const drop = c.times.length - MAX_POINTS;
      c.times.splice(0, drop);
      for (const name of LIVE_SERIES) c.values[name].splice(0, drop);
    }
  }

  /** The last value of a series, null when unknown. */
  latest(name: LiveSeriesName): number | null {
    const v = this.columns.values[name];
    return v.length === 0 ? null : (v[v.length - 1] ?? null);
  }
}
