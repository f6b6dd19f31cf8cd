import { hmmRangeFault, hmmRangeFaultAtomicsLoadReference, type HmmRange } from '/work/main/src/hmm/hmm.js';
import { subscribe } from '/work/main/test/hmm/harness.js';
import { addVma, makeMm, present, setPte } from '/work/main/test/hmm/util.js';
import { mkPte, PTE_PROTNONE, PTE_SPECIAL, PTE_TYPE_SWAP, PTE_WRITE, VM_READ, VM_WRITE } from '/work/main/src/mm/layout.js';
import { mmuIntervalReadBegin } from '/work/main/src/notifier/interval-notifier.js';
const N = 262144;
const { mm } = makeMm(1 << 30, 1 << 18);
const sub = subscribe(mm);
addVma(mm, 0, N, VM_READ | VM_WRITE);
let x = 12345;
for (let p = 0; p < N; p++) {
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
  const k = (x >>> 0) % 6;
  setPte(mm, p, k === 0 ? present(1024 + (p & 0xffff)) : k === 1 ? present(1024 + (p & 0xffff), PTE_WRITE) : k === 2 ? 0 : k === 3 ? mkPte(PTE_TYPE_SWAP, p) : k === 4 ? present(2000, PTE_PROTNONE) : present(0, PTE_SPECIAL));
}
const pfns = new Int32Array(2 * N);
const range: HmmRange = { notifier: sub, notifierSeq: mmuIntervalReadBegin(sub), start: 0, end: N * 4096, hmmPfns: pfns, defaultFlags: 0, pfnFlagsMask: 0, devPrivateOwner: -1 };
mm.mmapReadLock();
// plain loop writing the same output via a branchless-ish table
const tbl = new Int32Array(256);
for (let k = 0; k < 256; k++) { const t = (k & 7); tbl[k] = t === 1 ? ((k & 0x20) ? 0 : (k & 0x08) ? (3 << 30) : (1 << 31)) : 0; }
const out2 = new Int32Array(2 * N);
function plain(): void { const pte = mm.pte; for (let p = 0, i = 0; p < N; p++, i += 2) { const w = pte[p]!; const t = tbl[w >>> 24]!; out2[i] = (w >>> 24 & 7) === 1 ? w & 0xffffff : 0; out2[i + 1] = t; } }
function time(name: string, f: () => void): number { for (let i = 0; i < 20; i++) f(); const t0 = performance.now(); const R = 100; for (let i = 0; i < R; i++) f(); const dt = (performance.now() - t0) / R; console.log(name, dt.toFixed(3), 'ms', (dt * 1e6 / N).toFixed(2), 'ns/page'); return dt; }
const a = time('hmmRangeFault', () => { if (hmmRangeFault(range) !== 0) throw new Error('x'); });
const b = time('plain loop', plain);
const c = time('atomics ref', () => { hmmRangeFaultAtomicsLoadReference(range); });
console.log('ratio hmm/plain', (a / b).toFixed(2), 'atomics/hmm', (c / a).toFixed(2));
