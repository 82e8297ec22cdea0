/** Largest capture a trace record carries, bytes (`PSCOPE_MAX_CAPTURE` in bpf/include/periscope.h). */
export const MAX_CAPTURE = 1536;

/** Capture length when none is configured, bytes (`PSCOPE_DEFAULT_CAPTURE`). */
export const DEFAULT_CAPTURE = 128;
