/**
 * The TypeScript end of native/agent.c: a unix stream socket server that the
 * agents connect to, and one connection object per agent.
 *
 * Wire format (little-endian; keep in step with native/agent.c):
 *
 * | frame   | bytes | field                                                   |
 * | ------- | ----- | ------------------------------------------------------- |
 * | request | 4     | u32 payload length (<= AGENT_MAX_PAYLOAD_BYTES)         |
 * |         | 1     | u8 op (AGENT_OP)                                        |
 * |         | 3     | zero                                                    |
 * |         | 8     | u64 address                                             |
 * |         | 8     | u64 length in bytes                                     |
 * |         | 8     | u64 argument (mmap flags, madvise advice, prctl value)  |
 * |         | n     | payload (write: the bytes; fork: the child's name;      |
 * |         |       | fill: u32 hi, u32 lo, u32 lo step)                      |
 * | reply   | 4     | u32 payload length                                      |
 * |         | 4     | i32 errno, 0 on success                                 |
 * |         | 8     | i64 value (pid for getpid, fork and hello)              |
 * |         | n     | payload (read: the bytes)                               |
 *
 * A connection opens with a hello: a reply frame the agent sends unasked,
 * value = its pid, payload = its workload name. One request is in flight per
 * connection at a time; replies come back in order.
 */
import { readdirSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const AGENT_MAX_PAYLOAD_BYTES = 1 << 20;
const REQUEST_HEADER_BYTES = 32;
const REPLY_HEADER_BYTES = 16;

export const AGENT_OP = {
  mmap: 1,
  munmap: 2,
  write: 3,
  read: 4,
  madvise: 5,
  mlock: 6,
  prctl: 7,
  fork: 8,
  exit: 9,
  getpid: 10,
  /** Page k of the range becomes the value (hi, lo + k·step), big-endian, repeated 512 times. */
  fill: 11,
} as const;
export type AgentOp = keyof typeof AGENT_OP;

/** Bits of the mmap request's argument. */
export const AGENT_MMAP_SHARED = 1;
export const AGENT_MMAP_THP = 2;
export const AGENT_MMAP_HUGETLB = 4;

export interface AgentRequest {
  readonly address?: number;
  readonly lengthBytes?: number;
  readonly arg?: number;
  readonly payload?: Uint8Array;
}

export interface AgentReply {
  /** 0 on success, else the errno number of the failed call. */
  readonly errno: number;
  readonly value: number;
  readonly payload: Buffer;
}

interface Pending {
  readonly resolve: (reply: AgentReply) => void;
  readonly reject: (error: Error) => void;
}

/** Splits a byte stream into reply frames. */
class ReplyReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): AgentReply[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: AgentReply[] = [];
    for (;;) {
      if (this.buffered < REPLY_HEADER_BYTES) break;
      const head = this.peek(REPLY_HEADER_BYTES);
      const payloadBytes = head.readUInt32LE(0);
      if (this.buffered < REPLY_HEADER_BYTES + payloadBytes) break;
      const frame = this.take(REPLY_HEADER_BYTES + payloadBytes);
      frames.push({
        errno: frame.readInt32LE(4),
        value: Number(frame.readBigInt64LE(8)),
        payload: frame.subarray(REPLY_HEADER_BYTES),
      });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks.length > 1 && this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const frame = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return frame;
  }
}

/** One agent's connection, after its hello. */
export class AgentConnection {
  private readonly pending: Pending[] = [];
  private closedError: Error | undefined;
  /** Settles when the agent's end of the socket is closed (it exited, or was killed). */
  readonly closed: Promise<void>;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly socket: Socket,
    readonly name: string,
    readonly pid: number,
    reader: ReplyReader,
    /** Where the agent's stderr can be read for a death message, if anywhere. */
    private readonly describeDeath: () => string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const reply of reader.push(chunk)) {
        const p = this.pending.shift();
        if (p === undefined) {
          this.fail(new Error(`agent "${name}" (pid ${pid}) sent a reply nobody asked for`));
          return;
        }
        p.resolve(reply);
      }
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.fail(new Error(`agent "${name}" (pid ${pid}) closed its connection${this.describeDeath()}`));
        resolve();
      });
    });
    socket.on('error', (e) => this.fail(e));
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Sends one request and resolves with its reply; requests are queued, never interleaved. */
  request(op: AgentOp, request: AgentRequest = {}): Promise<AgentReply> {
    const run = this.chain.then(() => this.send(op, request));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private send(op: AgentOp, request: AgentRequest): Promise<AgentReply> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const payload = request.payload ?? new Uint8Array(0);
    if (payload.length > AGENT_MAX_PAYLOAD_BYTES) {
      return Promise.reject(
        new Error(`agent request payload of ${payload.length} bytes exceeds the maximum`),
      );
    }
    const header = Buffer.alloc(REQUEST_HEADER_BYTES);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt8(AGENT_OP[op], 4);
    header.writeBigUInt64LE(BigInt(request.address ?? 0), 8);
    header.writeBigUInt64LE(BigInt(request.lengthBytes ?? 0), 16);
    header.writeBigUInt64LE(BigInt(request.arg ?? 0), 24);
    return new Promise<AgentReply>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(header);
      if (payload.length > 0) this.socket.write(payload);
    });
  }

  private fail(error: Error): void {
    if (this.closedError === undefined) this.closedError = error;
    for (const p of this.pending.splice(0)) p.reject(this.closedError);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Socket directories are named after their owner's pid, so that a run killed with SIGKILL is cleaned up later. */
const DIRECTORY_PREFIX = 'ksmkit-agents-';

function removeDeadOwnersDirectories(): void {
  for (const entry of readdirSync(tmpdir())) {
    const owner = new RegExp(`^${DIRECTORY_PREFIX}(\\d+)-`).exec(entry);
    if (owner === null) continue;
    try {
      process.kill(Number(owner[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH')
        rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
  }
}

interface HelloWaiter {
  readonly resolve: (c: AgentConnection) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** The listening socket every agent of one backend connects to. */
export class AgentServer {
  private readonly waiting = new Map<string, HelloWaiter>();
  private readonly arrived = new Map<string, AgentConnection>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly directory: string,
    readonly socketPath: string,
    private readonly describeDeath: (pid: number) => string,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on a fresh socket in a private temporary directory. */
  static async listen(describeDeath: (pid: number) => string): Promise<AgentServer> {
    removeDeadOwnersDirectories();
    const directory = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}${process.pid}-`));
    const socketPath = join(directory, 'agents.sock');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return new AgentServer(server, directory, socketPath, describeDeath);
  }

  /**
   * The connection of the agent named `name`, once its hello arrives. Call it
   * before starting the agent (or the fork): the hello may come first.
   */
  expect(name: string, timeoutMs: number): Promise<AgentConnection> {
    const early = this.arrived.get(name);
    if (early !== undefined) {
      this.arrived.delete(name);
      return Promise.resolve(early);
    }
    if (this.waiting.has(name))
      return Promise.reject(new Error(`already waiting for an agent named "${name}"`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(name);
        reject(new Error(`agent "${name}" did not connect to ${this.socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(name, { resolve, reject, timer });
    });
  }

  /** Gives up waiting for `name` (its process died before it could connect). */
  cancel(name: string, error: Error): void {
    const w = this.waiting.get(name);
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.waiting.delete(name);
    w.reject(error);
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const reader = new ReplyReader();
    const onData = (chunk: Buffer): void => {
      const frames = reader.push(chunk);
      if (frames.length === 0) return;
      socket.off('data', onData);
      const hello = frames[0]!;
      const name = hello.payload.toString('utf8');
      const pid = hello.value;
      const connection = new AgentConnection(socket, name, pid, reader, () => this.describeDeath(pid));
      if (frames.length > 1) {
        connection.destroy();
        return;
      }
      const w = this.waiting.get(name);
      if (w !== undefined) {
        clearTimeout(w.timer);
        this.waiting.delete(name);
        w.resolve(connection);
      } else {
        this.arrived.set(name, connection);
      }
    };
    socket.on('data', onData);
  }

  /** Removes the socket and its directory at once (the exit and signal paths, where close() cannot finish). */
  removeSocketDirectory(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }

  /** Closes every connection (each agent then exits) and removes the socket. */
  async close(): Promise<void> {
    for (const [name] of this.waiting) this.cancel(name, new Error('agent server closed'));
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.directory, { recursive: true, force: true });
  }
}
