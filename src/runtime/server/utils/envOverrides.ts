// What Nitro 2 parsed an environment override into (destr): booleans, null, numbers, JSON arrays and objects.
const JSON_VALUE = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|\[[\s\S]*\]|\{[\s\S]*\})$/i

/**
 * Nitro 3 applies `NUXT_CHAT_*` overrides as raw strings (`NUXT_CHAT_RATE_LIMIT=false` gives
 * `'false'`), where Nitro 2 parsed them: parse them the same way, in place, once at startup.
 */
export function parseEnvOverrides(config: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(config)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) parseEnvOverrides(value as Record<string, unknown>)
    if (typeof value !== 'string' || !JSON_VALUE.test(value.trim())) continue
    try {
      config[key] = JSON.parse(/^(?:true|false|null)$/i.test(value.trim()) ? value.trim().toLowerCase() : value)
    }
    catch {
      // Looked like JSON but is not: kept as written, as destr does.
    }
  }
}
