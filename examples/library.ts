// Single-threaded library use: map memory, mirror it with hmmRangeFault, read the words.
import {
  cpuWrite,
  createMm,
  createPhysMem,
  HMM_PFN_REQ_FAULT_HI,
  hmmPfnsAlloc,
  hmmPfnToU64,
  hmmRangeFault,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MmuIntervalNotifier,
  mmap,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierSubscriptionsGet,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.js';

const phys = createPhysMem({ nframes: 4096, W: 16 });
const mm = createMm(phys, { size: 64 << 20 });
mmuNotifierSubscriptionsGet(mm);
const addr = mmap(mm, { length: 4 * 4096, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
cpuWrite(mm, addr, 42); // page 0 gets a frame; pages 1-3 stay empty

const sub = new MmuIntervalNotifier();
mmuIntervalNotifierInsert(sub, mm, addr, 4 * 4096, {
  invalidate(s, _range, curSeq) {
    mmuIntervalSetSeq(s, curSeq); // a real driver also takes its lock and clears its mirror
    return true;
  },
});
const hmmPfns = hmmPfnsAlloc(4);
const range = {
  notifier: sub,
  notifierSeq: 0,
  start: addr,
  end: addr + 4 * 4096,
  hmmPfns,
  defaultFlags: HMM_PFN_REQ_FAULT_HI, // fault every page in for read
  pfnFlagsMask: 0,
  devPrivateOwner: -1,
};
let ret: number;
do {
  range.notifierSeq = mmuIntervalReadBegin(sub);
  mm.mmapReadLock();
  ret = hmmRangeFault(range);
  mm.mmapReadUnlock();
} while (ret === -16 /* -EBUSY */ || (ret === 0 && mmuIntervalReadRetry(sub, range.notifierSeq)));
for (let i = 0; i < 4; i++)
  console.log(`page ${i}: 0x${hmmPfnToU64(hmmPfns, i).toString(16).padStart(16, '0')}`);
