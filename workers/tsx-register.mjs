// Preloaded into device workers (`execArgv: ['--import', <this file>]`) so they can run
// TypeScript. On Node 20, tsx 4.23's `--import tsx` registers its hooks only on the main thread,
// so a worker must call register() itself (works on newer Node too).
import { register } from 'tsx/esm/api';

register();
