/**
 * One ksmkit-probe process (native/probe.c): its pages go in through stdin,
 * then one command per line, one answer line each.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { PAGE_BYTES } from './pages.ts';

export class ProbeChild {
  private readonly lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  private stderr = '';
  private readonly reader: Interface;

  private constructor(
    readonly role: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    this.reader = createInterface({ input: child.stdout });
    this.reader.on('line', (line) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w !== undefined) w(line);
      else this.lines.push(line);
    });
    this.reader.on('close', () => {
      this.ended = true;
      this.waiting?.(undefined);
      this.waiting = undefined;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      this.stderr += d;
    });
    // EPIPE when the process died: its exit is reported by the next answer that does not come.
    child.stdin.on('error', () => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts the process with these page contents and waits for "loaded". */
  static async start(helperPath: string, role: string, contents: Uint8Array): Promise<ProbeChild> {
    const pages = contents.length / PAGE_BYTES;
    const child = spawn(helperPath, [String(pages)], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) => reject(new Error(`cannot start ${helperPath}: ${e.message}`)));
    });
    const probe = new ProbeChild(role, child);
    child.stdin.write(contents);
    await probe.expect('loaded');
    return probe;
  }

  private nextLine(): Promise<string | undefined> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** The next answer, which must start with `word`; the words after it. */
  async expect(word: string): Promise<string[]> {
    const line = await this.nextLine();
    if (line === undefined) {
      const why = this.stderr.trim();
      throw new Error(
        `the ${this.role} process ended before answering "${word}"${why === '' ? '' : `: ${why}`}`,
      );
    }
    const parts = line.split(' ');
    if (parts[0] !== word)
      throw new Error(`the ${this.role} process answered ${JSON.stringify(line)}, not "${word}"`);
    return parts.slice(1);
  }

  /** Sends one command and returns the answer's words after `answer`. */
  async command(command: 'merge' | 'time', answer: string): Promise<string[]> {
    this.child.stdin.write(`${command}\n`);
    return this.expect(answer);
  }

  /** Asks it to exit and waits; SIGKILL if it does not within a second. */
  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end('exit\n');
    const timer = setTimeout(() => this.kill(), 1000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL, synchronous: for the signal and error paths. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
