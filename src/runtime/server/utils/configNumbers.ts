import { envKey } from './envOverrides'

/**
 * Why each number the server would run with is not a finite number ≥ 0, naming its setting and
 * variable (`NUXT_CHAT_HEARTBEAT_INTERVAL=25s` stays the string `'25s'`: timers and heartbeat
 * slices made from it would be NaN). Walks `config` against the module's `defaults`.
 */
export function badConfigNumbers(config: Record<string, unknown>, defaults: Record<string, unknown>, path = 'CHAT', option = 'chat'): string[] {
  const problems: string[] = []
  for (const [key, fallback] of Object.entries(defaults)) {
    const value = config[key]
    const name = `${path}_${envKey(key)}`
    if (fallback && typeof fallback === 'object' && !Array.isArray(fallback) && value && typeof value === 'object') {
      problems.push(...badConfigNumbers(value as Record<string, unknown>, fallback as Record<string, unknown>, name, `${option}.${key}`))
    }
    else if (typeof fallback === 'number' && value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
      problems.push(`[nuxt-chat] ${option}.${key} (NUXT_${name}) is ${JSON.stringify(value)}: it must be a number of 0 or more (default ${fallback})`)
    }
  }
  return problems
}
