/** Control words shared by the driver tests and reader.worker.ts. */
export const R_CMD = 0;
export const R_ADDR = 1;
export const R_NPAGES = 2;
export const R_FILE = 3;
export const R_STARTED = 16;
export const R_DONE = 17;
export const R_RET = 18;
export const R_PAUSED = 19;
export const R_GO = 20;
export const R_WORDS = 32;
