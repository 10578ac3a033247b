/**
 * One uPlot time chart over the store's columns: its series, the x range
 * asked for (the last N seconds, or everything), the marks as dashed lines and
 * the moment the page opened as a dotted one. Resized with its container.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { LiveMark, LiveSeriesName } from '../../tools/status/live-protocol.ts';
import type { LiveStore } from './store.ts';

export interface ChartSeries {
  readonly name: LiveSeriesName;
  readonly label: string;
  readonly color: string;
}

export interface ChartProps {
  readonly id: string;
  readonly title: string;
  readonly series: readonly ChartSeries[];
  readonly store: LiveStore;
  /** Bumped on every reading: the chart redraws. */
  readonly version: number;
  /** Seconds shown, ending at the last reading; null: everything the page has. */
  readonly rangeS: number | null;
  readonly format: (value: number) => string;
  /** Steps the value axis may take between ticks (default: uPlot's decimal ones). */
  readonly incrs?: readonly number[];
}

const HEIGHT_PX = 200;

/** Dashed lines at the marks, a dotted one where the page opened. */
function marksPlugin(getMarks: () => readonly LiveMark[], openedAtS: number): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const { ctx, bbox } = u;
          const [min, max] = [u.scales.x!.min ?? 0, u.scales.x!.max ?? 0];
          const line = (timeS: number, color: string, dash: number[]): void => {
            if (timeS < min || timeS > max) return;
            const x = Math.round(u.valToPos(timeS, 'x', true));
            ctx.save();
            ctx.strokeStyle = color;
            ctx.lineWidth = uPlot.pxRatio;
            ctx.setLineDash(dash.map((d) => d * uPlot.pxRatio));
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            ctx.restore();
          };
          line(openedAtS, '#8a8a8a', [1, 3]);
          for (const m of getMarks()) line(m.timeMs / 1000, '#d9822b', [5, 4]);
        },
      ],
    },
  };
}

function dataFor(store: LiveStore, series: readonly ChartSeries[], rangeS: number | null): uPlot.AlignedData {
  const { times, values } = store.columns;
  let from = 0;
  if (rangeS !== null && times.length > 0) {
    const start = times[times.length - 1]! - rangeS;
    from = times.findIndex((t) => t >= start);
    if (from < 0) from = times.length;
  }
  return [times.slice(from), ...series.map((s) => values[s.name].slice(from))];
}

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const marks = useRef<readonly LiveMark[]>(props.store.marks);
  marks.current = props.store.marks;

  useEffect(() => {
    const el = box.current;
    if (el === null) return undefined;
    const format = props.format;
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: HEIGHT_PX,
        scales: { x: { time: true } },
        series: [
          {},
          ...props.series.map(
            (s): uPlot.Series => ({
              label: s.label,
              stroke: s.color,
              width: 2,
              value: (_u, v) => (v === null || v === undefined ? '—' : format(v)),
            }),
          ),
        ],
        axes: [
          {},
          {
            size: 72,
            values: (_u, splits) => splits.map((v) => format(v)),
            ...(props.incrs === undefined ? {} : { incrs: [...props.incrs] }),
          },
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
        plugins: [marksPlugin(() => marks.current, props.store.openedAtMs / 1000)],
      },
      dataFor(props.store, props.series, props.rangeS),
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() =>
      u.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT_PX }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The chart is made once; the data effect below feeds it.
  }, []);

  useEffect(() => {
    const u = plot.current;
    if (u === null) return;
    const data = dataFor(props.store, props.series, props.rangeS);
    u.setData(data);
    // Away from the cursor, the legend shows the latest reading rather than dashes.
    if (u.cursor.idx === null || u.cursor.idx === undefined) u.setLegend({ idx: data[0].length - 1 });
  }, [props.version, props.rangeS]);

  const { times } = props.store.columns;
  return (
    <section class="chart" aria-label={props.title}>
      <h3>{props.title}</h3>
      <div
        ref={box}
        class="plot"
        id={props.id}
        data-points={times.length}
        data-last={props.store.latest(props.series[0]!.name) ?? ''}
      />
    </section>
  );
}
