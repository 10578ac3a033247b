/** A reader thread of `ksmkit estimate` (see reader.ts): reads and hashes the jobs it is given. */
import { workerData } from 'node:worker_threads';
import { type WorkerShared, workerLoop } from './reader.ts';

workerLoop(workerData as WorkerShared);
