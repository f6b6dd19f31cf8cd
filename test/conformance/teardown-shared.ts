/** Control words shared by scenario 18's test and its worker. */
export const C_CMD = 0;
export const C_ADDR = 1;
export const C_LEN = 2;
export const C_DELAY_NS = 3;
export const C_DONE = 16;
export const C_RESULT = 17;
export const C_WORDS = 32;
