/**
 * Sizes and durations as scenario files and the command line spell them, and
 * back: `16GiB`, `512MiB`, `4096` (bytes); `90s`, `45min`, `1h30min`, `250ms`
 * (a bare number is seconds). Sizes are binary (KiB = 1024 bytes), as the
 * kernel counts memory; `K`/`M`/`G`/`T` are accepted as the same binary units.
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
};

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** Bytes of `16GiB`, `1.5 GiB`, `512M`, `4096`; undefined when it is not a size. */
export function parseSizeBytes(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  if (m === null) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

/** Milliseconds of `90s`, `45min`, `1h30min`, `250ms`, `2.5h`, or a bare number of seconds; undefined otherwise. */
export function parseDurationMs(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : undefined;
  const s = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < s.length) {
    while (s[at] === ' ') at++;
    if (at >= s.length) break;
    re.lastIndex = at;
    const m = re.exec(s);
    if (m === null) return undefined;
    total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    at = re.lastIndex;
  }
  return at === 0 ? undefined : total;
}

/** `12.3 GiB`, `512.0 MiB`, `-1.2 GiB`: the largest binary unit under the value. */
export function formatBytes(bytes: number, digits = 1): string {
  const abs = Math.abs(bytes);
  if (abs >= 2 ** 40) return `${(bytes / 2 ** 40).toFixed(digits)} TiB`;
  if (abs >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(digits)} GiB`;
  if (abs >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(digits)} MiB`;
  if (abs >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(digits)} KiB`;
  return `${bytes} B`;
}

/** `42 s`, `12.5 min`, `3.2 h`, `850 ms`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** `mm:ss` or `h:mm:ss` of virtual time, for live lines. */
export function formatClock(ms: number): string {
  const totalS = Math.floor(ms / 1000);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** `1.2M`, `340k`, `87`: counts for narrow columns. */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e7) return `${(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}
