// What Nitro 2 parsed an environment override into (destr): booleans, null, numbers, JSON arrays and objects.
const JSON_VALUE = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|\[[\s\S]*\]|\{[\s\S]*\})$/i

/** The variable part of an override's name for a config key: `maxConnectionsPerIp` → `MAX_CONNECTIONS_PER_IP`. */
export const envKey = (key: string) => key.replace(/([a-z\d])([A-Z])/g, '$1_$2').toUpperCase()

/**
 * Nitro 3 applies `NUXT_CHAT_*` (and `NITRO_CHAT_*`) overrides as raw strings
 * (`NUXT_CHAT_RATE_LIMIT=false` gives `'false'`), where Nitro 2 parsed them: parse them the same
 * way, in place, once at startup. Only values an environment variable set: a password or token
 * written in `nuxt.config` stays the string it is.
 */
export function parseEnvOverrides(config: Record<string, unknown>, env: Record<string, string | undefined> = process.env, path = 'CHAT'): void {
  for (const [key, value] of Object.entries(config)) {
    const name = `${path}_${envKey(key)}`
    if (value && typeof value === 'object' && !Array.isArray(value)) parseEnvOverrides(value as Record<string, unknown>, env, name)
    if (typeof value !== 'string' || !JSON_VALUE.test(value.trim())) continue
    if (env[`NUXT_${name}`] === undefined && env[`NITRO_${name}`] === undefined) continue
    try {
      const parsed: unknown = JSON.parse(/^(?:true|false|null)$/i.test(value.trim()) ? value.trim().toLowerCase() : value)
      // `1e999` would be Infinity: kept as written.
      if (typeof parsed !== 'number' || Number.isFinite(parsed)) config[key] = parsed
    }
    catch {
      // Looked like JSON but is not: kept as written, as destr does.
    }
  }
}
