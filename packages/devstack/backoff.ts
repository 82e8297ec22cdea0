/** How a supervised process is restarted after it exits on its own. */
export interface RestartPolicy {
  /** Delay before the first restart, ms (default 1000). */
  readonly initialMs?: number;
  /** Longest delay between restarts, ms (default 30000). */
  readonly maxMs?: number;
  /** Each further restart waits this many times longer (default 2). */
  readonly factor?: number;
  /**
   * A run that lasted at least this long, ms, counts as healthy: the next restart waits
   * `initialMs` again (default 10000).
   */
  readonly resetAfterMs?: number;
  /**
   * Exit codes that mean restarting cannot help, e.g. 2 for a bad configuration
   * (default [2]); like systemd's RestartPreventExitStatus.
   */
  readonly noRestartCodes?: readonly number[];
  /** Restart after a clean exit (code 0) too (default true: a service never ends on its own). */
  readonly restartOnSuccess?: boolean;
}

/** The policy used when a caller asks for restarts without details. */
export const DEFAULT_RESTART_POLICY: Required<RestartPolicy> = Object.freeze({
  initialMs: 1000,
  maxMs: 30_000,
  factor: 2,
  resetAfterMs: 10_000,
  noRestartCodes: Object.freeze([2]),
  restartOnSuccess: true,
});

/**
 * Exponential restart delay, capped, that starts over once a run has stayed up for
 * `resetAfterMs`. One instance per supervised name.
 */
export class RestartBackoff {
  readonly #policy: Required<RestartPolicy>;
  #failures = 0;

  constructor(policy: RestartPolicy = {}) {
    this.#policy = { ...DEFAULT_RESTART_POLICY, ...policy };
  }

  /** The policy in force, defaults filled in. */
  get policy(): Required<RestartPolicy> {
    return this.#policy;
  }

  /**
   * The delay before restarting a process that ran for `upMs`, ms: `initialMs ·
   * factor^(n-1)` for the n-th consecutive short run, at most `maxMs`.
   */
  next(upMs: number): number {
    const p = this.#policy;
    if (upMs >= p.resetAfterMs) this.#failures = 0;
    const delay = Math.min(p.maxMs, p.initialMs * p.factor ** this.#failures);
    this.#failures++;
    return Math.round(delay);
  }

  /** Whether an exit with `code` (null when a signal ended it) should be restarted. */
  shouldRestart(code: number | null): boolean {
    if (code === null) return true;
    if (code === 0) return this.#policy.restartOnSuccess;
    return !this.#policy.noRestartCodes.includes(code);
  }
}

/** "1s", "250ms", "1.5s", "30s": a delay as a person reads it. */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}
