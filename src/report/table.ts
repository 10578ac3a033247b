/**
 * The text tables of every command: compact (no rule between rows), coloured
 * only when asked (borders and headers alike, so NO_COLOR leaves no escape
 * sequence), and, given a width, fitted to it: the widest columns are narrowed
 * and their cells wrapped at word boundaries, so an 80-column terminal shows
 * the table instead of a wrapped mess.
 */
import Table from 'cli-table3';
import pc from 'picocolors';

export type Align = 'left' | 'right';

export interface TextTableOptions {
  readonly head: readonly string[];
  readonly color: boolean;
  readonly align?: readonly Align[];
  /** The terminal's columns; undefined: as wide as the cells need. */
  readonly width?: number | undefined;
}

/** Colour when the caller asks for it: the caller has already decided (NO_COLOR, a terminal). */
const forcedColors = pc.createColors(true);

/** Left and right padding cli-table3 puts in every cell. */
const CELL_PADDING = 2;
/** No column is narrowed below this (a number such as `12.5 GiB` still fits on one line). */
const MIN_COLUMN = 10;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the terminal's escape sequences is the point
const ANSI = /\u001b\[[0-9;]*m/g;

function visibleLength(text: string): number {
  let longest = 0;
  for (const line of text.replace(ANSI, '').split('\n')) longest = Math.max(longest, [...line].length);
  return longest;
}

/** Renders the table; rows are cell texts. */
export function textTable(options: TextTableOptions, rows: readonly (readonly string[])[]): string {
  const columns = options.head.length;
  const widths = Array.from({ length: columns }, (_, i) =>
    Math.max(visibleLength(options.head[i] ?? ''), ...rows.map((r) => visibleLength(r[i] ?? ''))),
  ).map((w) => w + CELL_PADDING);
  const fitted = options.width === undefined ? undefined : fitWidths(widths, options.width);
  if (fitted !== undefined && options.width !== undefined && tableWidth(fitted) > options.width)
    return stackedTable(options, rows);
  const table = new Table({
    // Coloured here, not by cli-table3: its colour library turns itself off under CI=true, whatever the caller decided.
    head: options.color ? options.head.map((h) => forcedColors.cyan(h)) : [...options.head],
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: { head: [], border: [] },
    ...(options.align === undefined ? {} : { colAligns: [...options.align] }),
    ...(fitted === undefined ? {} : { colWidths: fitted, wordWrap: true, wrapOnWordBoundary: true }),
  });
  for (const row of rows) table.push([...row]);
  return table.toString();
}

/** A table's width with its borders, from its column widths (padding included). */
function tableWidth(widths: readonly number[]): number {
  return widths.reduce((a, b) => a + b, 0) + widths.length + 1;
}

/**
 * A table too wide for the terminal even with every column at its narrowest
 * (estimate's ten columns in 80): one block per row, a line per column, so
 * nothing is cut and no number is wrapped mid-figure.
 */
function stackedTable(options: TextTableOptions, rows: readonly (readonly string[])[]): string {
  const nameWidth = Math.max(...options.head.map((h) => visibleLength(h)));
  const name = (h: string): string => {
    const padded = h + ' '.repeat(nameWidth - visibleLength(h));
    return options.color ? forcedColors.cyan(padded) : padded;
  };
  return rows
    .map((row) =>
      options.head
        .map((h, i) =>
          `${name(h)}  ${(row[i] ?? '').replace(/\n/g, `\n${' '.repeat(nameWidth + 2)}`)}`.trimEnd(),
        )
        .join('\n'),
    )
    .join('\n\n');
}

/**
 * Column widths (padding included) whose sum with the borders is at most
 * `total`, narrowing the widest column first; undefined when the natural widths
 * already fit.
 */
export function fitWidths(natural: readonly number[], total: number): number[] | undefined {
  const borders = natural.length + 1;
  const widths = [...natural];
  const sum = (): number => widths.reduce((a, b) => a + b, 0) + borders;
  if (sum() <= total) return undefined;
  while (sum() > total) {
    let widest = 0;
    for (let i = 1; i < widths.length; i++) if (widths[i]! > widths[widest]!) widest = i;
    if (widths[widest]! <= MIN_COLUMN + CELL_PADDING) break;
    widths[widest]!--;
  }
  return widths;
}
