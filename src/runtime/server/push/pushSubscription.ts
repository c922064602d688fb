/** A browser's `PushSubscription` JSON as the subscribe route takes it (docs/PROTOCOL.md, "Notifications"). */
export interface PushSubscriptionInput {
  endpoint: string
  p256dh: string
  auth: string
}

/** Longest endpoint URL kept. */
export const MAX_ENDPOINT_LENGTH = 1024
const BASE64URL = /^[\w-]+={0,2}$/
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])
const IP_LITERAL = /^\d+\.\d+\.\d+\.\d+$/

/** The bytes of a base64url key of exactly `length` bytes, else undefined. */
function keyBytes(value: unknown, length: number): Buffer | undefined {
  if (typeof value !== 'string' || value.length > 200 || !BASE64URL.test(value)) return undefined
  const bytes = Buffer.from(value.replace(/=+$/, ''), 'base64url')
  return bytes.length === length ? bytes : undefined
}

/** Why an endpoint is refused, or undefined: `https:` to a host name (with `insecureLoopback`, `http:` on this machine too), no credentials, bounded. */
export function endpointProblem(endpoint: unknown, insecureLoopback: boolean): string | undefined {
  if (typeof endpoint !== 'string' || !endpoint || endpoint.length > MAX_ENDPOINT_LENGTH) return `endpoint must be a URL of at most ${MAX_ENDPOINT_LENGTH} characters`
  let url: URL
  try {
    url = new URL(endpoint)
  }
  catch {
    return 'endpoint is not a URL'
  }
  if (url.username || url.password) return 'endpoint must not hold credentials'
  if (url.protocol !== 'https:' && !(insecureLoopback && url.protocol === 'http:')) return 'endpoint must be an https: URL'
  if (insecureLoopback && LOOPBACK.has(url.hostname)) return undefined
  // Push services are named by host name: an address or `localhost` would point the server at a machine of the network it runs in.
  if (IP_LITERAL.test(url.hostname) || url.hostname.startsWith('[') || /^localhost\.?$/i.test(url.hostname) || !url.hostname.includes('.')) return 'endpoint must name a push service by its host name'
  return url.protocol === 'https:' ? undefined : 'endpoint must be an https: URL'
}

/** Check a subscribe body: the subscription, or why it is refused. */
export function parseSubscription(data: unknown, insecureLoopback: boolean): PushSubscriptionInput | string {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'Body must be a PushSubscription\'s JSON object'
  const { endpoint, keys } = data as { endpoint?: unknown, keys?: { p256dh?: unknown, auth?: unknown } }
  const problem = endpointProblem(endpoint, insecureLoopback)
  if (problem) return problem
  if (!keys || typeof keys !== 'object') return 'keys must be an object with p256dh and auth'
  const p256dh = keyBytes(keys.p256dh, 65)
  // An uncompressed P-256 point starts with 4.
  if (!p256dh || p256dh[0] !== 4) return 'keys.p256dh must be base64url of an uncompressed P-256 public key (65 bytes)'
  if (!keyBytes(keys.auth, 16)) return 'keys.auth must be base64url of 16 bytes'
  return { endpoint: endpoint as string, p256dh: keys.p256dh as string, auth: keys.auth as string }
}
