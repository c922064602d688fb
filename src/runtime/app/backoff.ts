/** Reconnection timing. */

export interface BackoffOptions {
  /** First delay, in milliseconds. @default 500 */
  delay: number
  /** Longest delay, in milliseconds. @default 10000 */
  maxDelay: number
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped, with "equal jitter"
 * (half fixed, half random) so a crowd that lost the server together does not return together.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelay, options.delay * 2 ** Math.min(attempt, 30))
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}
