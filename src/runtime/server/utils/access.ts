import type { Hookable } from 'hookable'
import { DEFAULT_ROOM, isValidRoom, parseCursor, sanitizeName, type ChatUser } from '../../shared/protocol'
import type { ChatIdentifyContext, ChatRequestInfo, ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'

/** Who may join, where, from which message on: the outcome of admitting a request. */
export interface ChatAdmission {
  room: string
  user: ChatUser
  /** `cid` de-duplication key: the identified user id, or '' for anonymous peers. */
  sender: string
  since?: number
  ip?: string
}

/** A request refused before any socket or stream opens. */
export class ChatRefusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

/**
 * The client address: the last entry of `clientIpHeader` when configured (the one your trusted
 * proxy added; earlier entries come from the client), else the socket's.
 */
export function clientIp(headers: Headers, socketAddress: string | undefined, config: ChatRuntimeConfig): string | undefined {
  if (config.clientIpHeader) {
    const forwarded = headers.get(config.clientIpHeader)?.split(',').at(-1)?.trim()
    if (forwarded) return forwarded
  }
  return socketAddress
}

/**
 * Is a browser request allowed from its `Origin`? Same host as the request, or listed in
 * `allowedOrigins` (`*` allows all). No `Origin` header: not a browser, allowed.
 * This stops cross-site WebSocket hijacking: browsers send cookies on cross-site upgrades.
 */
export function isOriginAllowed(headers: Headers, allowedOrigins: string[]): boolean {
  const origin = headers.get('origin')
  if (!origin) return true
  if (allowedOrigins.includes('*') || allowedOrigins.includes(origin)) return true
  try {
    return new URL(origin).host === headers.get('host')
  }
  catch {
    return false
  }
}

/**
 * Admit a request to a room: the room name, the origin, then the app's `chat:identify` hook.
 * Throws `ChatRefusal` (400, 401, 403, 500) when the request may not join.
 */
export async function admitRequest(request: ChatRequestInfo, anonymousId: string, config: ChatRuntimeConfig, hooks: Hookable<ChatRuntimeHooks>): Promise<ChatAdmission> {
  const query = request.url.searchParams
  const room = query.get('room') ?? DEFAULT_ROOM
  if (!isValidRoom(room)) throw new ChatRefusal(400, 'Invalid room: 1-64 characters from [A-Za-z0-9._:-]')
  if (!isOriginAllowed(request.headers, config.allowedOrigins)) throw new ChatRefusal(403, 'Origin not allowed')
  const since = parseCursor(request.headers.get('last-event-id') ?? query.get('since'))
  const context: ChatIdentifyContext = { request, room, name: sanitizeName(query.get('name')) }
  try {
    await hooks.callHook('chat:identify', context)
  }
  catch (error) {
    const { statusCode, statusMessage, message } = error as { statusCode?: number, statusMessage?: string, message?: string }
    // Anything but an HTTP error is a bug in the hook: the caller logs it and answers 500, without its text.
    if (!statusCode || statusCode < 400 || statusCode > 599) throw error
    throw new ChatRefusal(statusCode, statusMessage || message || 'Not allowed')
  }
  const identified = context.user && typeof context.user.id === 'string' && context.user.id
  const user: ChatUser = identified
    ? { id: String(context.user!.id), name: sanitizeName(context.user!.name) ?? String(context.user!.id) }
    : { id: anonymousId, name: context.name ?? anonymousId }
  return { room, user, sender: identified ? user.id : '', since, ip: request.ip }
}

const connectionsByIp = new Map<string, number>()
const NOTHING_HELD = () => {}

/**
 * Count a connection against its address's `maxConnectionsPerIp` (0: no cap).
 * Returns a release function, or `undefined` when the address is over its cap.
 */
export function holdConnection(ip: string | undefined, max: number): (() => void) | undefined {
  // No cap: nothing to count, nothing to allocate per connection.
  if (!max || !ip) return NOTHING_HELD
  const count = connectionsByIp.get(ip) ?? 0
  if (count >= max) return undefined
  connectionsByIp.set(ip, count + 1)
  let released = false
  return () => {
    if (released) return
    released = true
    const left = (connectionsByIp.get(ip) ?? 1) - 1
    if (left > 0) connectionsByIp.set(ip, left)
    else connectionsByIp.delete(ip)
  }
}
