// The backstop watchdog: a plain worker (no TypeScript, nothing to compile) that watches the main
// thread's heartbeat in the control block. The main thread's own watchdog reports stuck devices;
// this one covers the case it cannot: the main thread itself stuck in a wait (a deadlock in the
// mm under a mutant, or a device that holds its update lock forever).
//
// Then, when the run has a wedged handler (`inspect`), it connects to the main thread through the
// inspector and evaluates that handler there: V8 runs it as an interrupt of the stuck wait (a wait
// in slices, a spin, even an unbounded Atomics.wait), so the main thread gathers its results,
// writes them and exits with code 3. Only if that has not ended the process within `graceMs` (or
// there is no handler) does it write a dump of the lock words and seqs straight to fd 2 and kill
// the process (status 137: a worker cannot set the process's exit status).
import { writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { workerData } from 'node:worker_threads';

const d = workerData;
const c = new Int32Array(d.control);
const mmCtl = new Int32Array(d.mmCtl);
const mn = new Int32Array(d.notifierWords);
const files = d.files.map((f) => ({ id: f.id, ctl: new Int32Array(f.ctl) }));
const nowUs = () => Math.round((performance.timeOrigin + performance.now() - d.epoch) * 1000) | 0;

/** The mmap lock (src/shm/percpu-rwsem.ts): writer word (bit 0 held, 2 per waiting writer), reader slots. */
function mmapLockText(L) {
  const b = L.MM_MMAP_LOCK;
  const wr = Atomics.load(mmCtl, b);
  let readers = 0;
  for (let i = 1; i <= L.PERCPU_RWSEM_SLOTS; i++) readers += Atomics.load(mmCtl, b + i * L.LINE_WORDS);
  const holder =
    (wr & 1) !== 0
      ? readers === 0
        ? 'held by a writer'
        : `a writer waiting for ${readers} readers`
      : `${readers} readers`;
  return `${holder}, writers waiting ${wr >>> 1}`;
}

function dump(staleMs, why) {
  const L = d.layout;
  const lines = [
    `hmmsim run: HUNG: the main thread made no progress for ${staleMs} ms (watchdog bound ${d.boundMs} ms)`,
    `main: op ${['idle', 'mutating', 'audit', 'pacing'][Atomics.load(c, L.CTL_MAIN_OP)] ?? '?'}, mutation kind ${d.kinds[Atomics.load(c, L.CTL_MAIN_KIND)] ?? '-'}, ${Atomics.load(c, L.CTL_MAIN_OPS)} mutations`,
    `mmap lock ${mmapLockText(L)}; page-table lock owner thread ${Atomics.load(mmCtl, L.MM_PTL + 1) - 1}`,
    `interval notifier: invalidate_seq ${Atomics.load(mn, L.MN_SEQ)}, active ranges ${Atomics.load(mn, L.MN_ACTIVE)}, lock owner thread ${Atomics.load(mn, L.MN_LOCK + 1) - 1}`,
  ];
  for (const f of files) {
    lines.push(
      `file ${f.id}: update lock ${Atomics.load(f.ctl, 0)} (0 free), owner thread ${Atomics.load(f.ctl, 1) - 1}`,
    );
  }
  for (let i = 0; i < d.devices; i++) {
    const b = L.devBase0 + i * L.DEV_WORDS;
    lines.push(
      `device ${i} thread ${Atomics.load(c, b + L.D_THREAD)}: state ${d.states[Atomics.load(c, b + L.D_STATE)] ?? '?'}, op ${d.ops[Atomics.load(c, b + L.D_OP)] ?? '?'} at 0x${(Atomics.load(c, b + L.D_ADDR) * 4096).toString(16)}, ${Atomics.load(c, b + L.D_OPS)} ops`,
    );
  }
  lines.push(`hmmsim run: the process is killed (${why})`);
  writeSync(2, `${lines.join('\n')}\n`);
}

function kill(staleMs, why) {
  dump(staleMs, why);
  process.kill(process.pid, 'SIGKILL');
}

let fired = false;
const tick = () => {
  if (Atomics.load(c, d.layout.CTL_WATCHDOG_OFF) !== 0) return;
  const beat = Atomics.load(c, d.layout.CTL_MAIN_BEAT);
  const stale = (nowUs() - beat) / 1000;
  if (beat !== 0 && stale > d.boundMs && !fired) {
    fired = true;
    const ms = Math.round(stale);
    if (!d.inspect) {
      kill(ms, 'no wedged handler: a hung main thread cannot return exit code 3');
      return;
    }
    try {
      const s = new Session();
      s.connectToMainThread();
      // Never answers when it works: the handler ends the process.
      s.post('Runtime.evaluate', { expression: `globalThis[${JSON.stringify(d.handler)}]?.(${ms})` }, () => {
        if (Atomics.load(c, d.layout.CTL_WATCHDOG_OFF) === 0) kill(ms, 'the wedged handler returned');
      });
    } catch (e) {
      kill(ms, `the inspector could not reach the main thread: ${e instanceof Error ? e.message : e}`);
      return;
    }
    setTimeout(() => {
      if (Atomics.load(c, d.layout.CTL_WATCHDOG_OFF) === 0)
        kill(ms, `the wedged handler did not end the process within ${d.graceMs} ms`);
    }, d.graceMs).unref();
    return;
  }
  setTimeout(tick, Math.min(500, d.boundMs / 4));
};
setTimeout(tick, 500);
