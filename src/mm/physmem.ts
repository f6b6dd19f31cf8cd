/**
 * Physical memory shared by every process: the frame pool (metadata + content), the swap area
 * and the page caches of files. Created once on the main thread, attached in workers.
 *
 * SKELETON: fields fixed here; allocation, freeing, swap and files are to be completed.
 */
import { sharedInt32 } from '../shm/layout.js';
import type { FrameArrays } from './layout.js';

export interface PhysMemDescriptor {
  nframes: number;
  /** data words per frame (W, 1..1024) */
  W: number;
  state: SharedArrayBuffer;
  gen: SharedArrayBuffer;
  wcount: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export class PhysMem {
  readonly nframes: number;
  readonly W: number;
  readonly frames: FrameArrays;

  constructor(d: PhysMemDescriptor) {
    this.nframes = d.nframes;
    this.W = d.W;
    this.frames = {
      state: new Int32Array(d.state),
      gen: new Int32Array(d.gen),
      wcount: new Int32Array(d.wcount),
      data: new Int32Array(d.data),
    };
  }
}

export interface CreatePhysMemOptions {
  nframes?: number;
  W?: number;
}

export function createPhysMem(opts: CreatePhysMemOptions = {}): PhysMem {
  const nframes = opts.nframes ?? 1 << 18;
  const W = opts.W ?? 1024;
  return new PhysMem({
    nframes,
    W,
    state: sharedInt32(nframes).buffer as SharedArrayBuffer,
    gen: sharedInt32(nframes).buffer as SharedArrayBuffer,
    wcount: sharedInt32(nframes).buffer as SharedArrayBuffer,
    data: sharedInt32(nframes * W).buffer as SharedArrayBuffer,
  });
}
