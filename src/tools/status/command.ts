/**
 * `ksmkit status` without commander: options in, exit status out, output
 * through `io` so tests can run it against fixture directories.
 */
import { lockState } from '../../backend/kernel/sysfs-guard.ts';
import { formatHuman } from './human.ts';
import { toJson } from './json.ts';
import { lockLines } from './lock.ts';
import { formatPrometheus } from './prometheus.ts';
import { DEFAULT_SERVE_HOST, LOOPBACK, type StatusServer, serveStatus } from './serve.ts';
import { readSnapshot, type StatusSources } from './snapshot.ts';
import { watchStatus } from './watch.ts';

export interface StatusCommandOptions {
  readonly json: boolean;
  readonly prometheus: boolean;
  readonly watch: boolean;
  /** Seconds between readings with --watch and, for the live page, --serve. */
  readonly interval: number;
  readonly serve?: number;
  readonly host?: string;
  readonly all: boolean;
  readonly sources: StatusSources;
  /** --watch: stop after this many readings. */
  readonly count?: number;
  /** The kernel backend's lock file: a run driving ksmd, or one killed that left settings behind. */
  readonly lockPath?: string;
}

export interface StatusIo {
  /** Raw text to stdout (lines carry their own newline). */
  readonly write: (text: string) => void;
  readonly err: (line: string) => void;
  readonly isTTY: boolean;
  readonly rows?: number;
  /** The terminal's columns. */
  readonly columns?: number | undefined;
  readonly color: boolean;
  /** Aborted on SIGINT/SIGTERM: ends --watch and --serve cleanly. */
  readonly signal: AbortSignal;
}

export const EXIT_OK = 0;
/** No KSM in this kernel, or the server could not start. */
export const EXIT_FAILURE = 1;

async function serve(port: number, options: StatusCommandOptions, io: StatusIo): Promise<number> {
  const host = options.host ?? DEFAULT_SERVE_HOST;
  let server: StatusServer;
  try {
    server = await serveStatus({
      port,
      host,
      sources: options.sources,
      snapshot: { allProcesses: options.all },
      intervalMs: options.interval * 1000,
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need root)'
          : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
            ? 'no such local address'
            : (e as Error).message;
    io.err(`ksmkit status: cannot serve on ${host}:${port}: ${why}`);
    return EXIT_FAILURE;
  }
  io.write(
    `ksmkit status: live page at ${server.pageUrl}, a reading every ${options.interval} s (Ctrl-C to stop)\n`,
  );
  io.write(`ksmkit status: serving Prometheus metrics at ${server.url}\n`);
  if (!server.pageBuilt) {
    io.err('ksmkit status: the live page is not built (run `npm install` in ksmkit): / answers 503');
  }
  if (process.getuid?.() === 0 && LOOPBACK.test(host)) {
    io.err(
      "ksmkit status: note: served as root, so any local user who can reach it sees every process's KSM " +
        "state (/proc/PID/ksm_stat of another user's process otherwise needs root)",
    );
  }
  if (!LOOPBACK.test(host)) {
    io.err(
      [
        '',
        `ksmkit status: WARNING: listening on ${host}, which is NOT a loopback address.`,
        "ksmkit status: WARNING: anyone who can reach it sees this host's KSM state and the command lines",
        'ksmkit status: WARNING: of the processes using KSM. There is no password and no TLS.',
        'ksmkit status: WARNING: Leave --bind out to serve 127.0.0.1 only.',
        '',
      ].join('\n'),
    );
  }
  const snapshot = readSnapshot(options.sources);
  if (!snapshot.available) io.err(`ksmkit status: KSM is not in this kernel: ${snapshot.unavailableReason}`);
  else if (snapshot.unreadable > 0) {
    io.err(
      `ksmkit status: ${snapshot.unreadable} processes' /proc/PID/ksm_stat are unreadable: ` +
        "other users' processes need root",
    );
  }
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  return EXIT_OK;
}

export async function statusCommand(options: StatusCommandOptions, io: StatusIo): Promise<number> {
  if (options.serve !== undefined) return serve(options.serve, options, io);
  const snapshotOptions = { allProcesses: options.all };
  if (options.watch) {
    await watchStatus({
      sources: options.sources,
      snapshot: snapshotOptions,
      intervalMs: options.interval * 1000,
      json: options.json,
      color: io.color,
      out: { write: io.write, isTTY: io.isTTY, ...(io.rows === undefined ? {} : { rows: io.rows }) },
      signal: io.signal,
      ...(options.count === undefined ? {} : { count: options.count }),
    });
    return EXIT_OK;
  }
  const s = readSnapshot(options.sources, snapshotOptions);
  if (options.prometheus) io.write(formatPrometheus(s));
  else if (options.json) io.write(`${JSON.stringify(toJson(s), null, 2)}\n`);
  else {
    const lock = options.lockPath === undefined ? [] : lockLines(lockState(options.lockPath), Date.now());
    io.write(
      `${[...lock, ...(lock.length > 0 ? [''] : []), ...formatHuman(s, { color: io.color, width: io.columns })].join('\n')}\n`,
    );
  }
  if (!s.available) {
    if (options.json || options.prometheus)
      io.err(`ksmkit status: KSM is not in this kernel: ${s.unavailableReason}`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
