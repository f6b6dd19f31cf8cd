// Preloaded into test workers (`execArgv: ['--import', <this file>]`) so they can run TypeScript.
// `--import tsx` is not enough there: on Node 20, tsx 4.23 registers its hooks only on the main
// thread (it needs Node 22.22+ for worker threads), so a worker must call register() itself.
import { register } from 'tsx/esm/api';

register();
