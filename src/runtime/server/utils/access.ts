import { createHash, randomFillSync } from 'node:crypto'
import type { Hookable } from 'hookable'
import { DEFAULT_ROOM, isValidRoom, parseCursor, type ChatErrorFrame, type ChatUser } from '../../shared/protocol'
import type { ChatIdentifyContext, ChatJoinContext, ChatRequestInfo, ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { chatLogger } from './logger'
import { checkGuestName, normalizeName } from './names'
import { directRoomId, memberIdProblem } from './roomMembers'

/** Who may join, where, from which message on: the outcome of admitting a request. */
export interface ChatAdmission {
  room: string
  /** The signed-in user, or the guest (`guest: true`). */
  user: ChatUser
  /** Who sends, for `cid` de-duplication and the rate limit: `user.id`. */
  sender: string
  since?: number
  ip?: string
  /** Why a guest's name wish was refused: told in a `name_refused` frame right after the welcome. */
  nameRefused?: string
  /** A `?rooms` connection: it joins no room (`room` is empty) and follows its signed-in user's rooms list. */
  rooms?: true
  /**
   * Joining creates the user's read position: a WebSocket upgrade (its `Origin` was checked), or
   * a request a page of the app (or of `allowedOrigins`) made (see `requestSource`).
   */
  createsReadPosition: boolean
  /** A version 1 rooms list's request, as `chat:identify` saw it: it is asked again for each room the list shows. */
  request?: ChatRequestInfo
  /** What `chat:identify` set as `ctx.data`: given to every `chat:join` of this connection. */
  data?: Record<string, unknown>
  /** Version 1 `?deltas=1`: the connection is sent streaming messages' `delta` frames (version 2 always is; the seed page, which shows every frame, never asks). */
  deltas?: true
  /** `?dm=`: the other person of the direct room `room` (made at admission if it is not there yet). */
  directWith?: string
  /** A version 2 connection (docs/PROTOCOL.md, "Version 2"): in no room until it joins one. */
  version?: 2
  /** The hub's membership clock when `admitToRoom` began: what ends the person's connections to the room after it ends this join too (`ChatHub.join`). */
  admittedAt?: number
}

/** A request refused before any socket or stream opens. */
export class ChatRefusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

/** The `error` frame code for an HTTP refusal, so clients need not read the status. */
export function refusalCode(status: number): ChatErrorFrame['code'] {
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'forbidden'
  if (status === 429) return 'rate_limited'
  return status >= 500 ? 'unavailable' : 'bad_request'
}

/** Signed-in users' display names in a room (a guest may not take a look-alike of one). */
export type SignedInNames = (room: string) => Iterable<string> | Promise<Iterable<string>>

const GUEST_KEY = /^[\w-]{22,64}$/
const GUEST_PREFIX = 'guest:'

/**
 * A guest's id: `guest:` + 22 base64url characters of SHA-256 of its key, so the same key gives
 * the same id and the id does not give the key away; without a key, 128 fresh random bits.
 */
export function guestId(key?: string): string {
  const part = key ? createHash('sha256').update(key).digest('base64url').slice(0, 22) : randomPart()
  return GUEST_PREFIX + part
}

// Random bits fetched 4 KiB at a time (as crypto.randomUUID does): one syscall per 256 guests, not one each.
const entropy = Buffer.alloc(4096)
let entropyAt = entropy.length

/** 128 fresh random bits in base64url; each byte of the pool is used once. */
function randomPart(): string {
  if (entropyAt + 16 > entropy.length) {
    randomFillSync(entropy)
    entropyAt = 0
  }
  const part = entropy.toString('base64url', entropyAt, entropyAt + 16)
  entropyAt += 16
  return part
}

/** The name a guest gets when it asks for none (or for one it may not have): `guest-` + 6 characters of its id. */
export function defaultGuestName(id: string): string {
  return `guest-${id.slice(GUEST_PREFIX.length, GUEST_PREFIX.length + 6)}`
}

/** The last entry of a comma-separated header: the one the nearest (trusted) proxy added; earlier ones come from the client. */
function lastEntry(headers: Headers, name: string): string | undefined {
  return headers.get(name)?.split(',').at(-1)?.trim() || undefined
}

/**
 * The client address: the last entry of `clientIpHeader` when configured (the one your trusted
 * proxy added; earlier entries come from the client), else the socket's.
 */
export function clientIp(headers: Headers, socketAddress: string | undefined, config: ChatRuntimeConfig): string | undefined {
  return (config.clientIpHeader && lastEntry(headers, config.clientIpHeader)) || socketAddress
}

/**
 * The scheme the client used: `https` on a TLS socket; behind a trusted proxy (`clientIpHeader`
 * set) the last `X-Forwarded-Proto` entry; else `http`. Nobody else may claim https.
 */
function requestScheme(headers: Headers, encrypted: boolean, config: ChatRuntimeConfig): 'http' | 'https' {
  if (encrypted) return 'https'
  const forwarded = config.clientIpHeader ? lastEntry(headers, 'x-forwarded-proto')?.toLowerCase() : undefined
  return forwarded === 'https' ? 'https' : 'http'
}

/**
 * Host headers checked lately (`null`: not an authority), least recently used first: clients
 * choose them, so the cache is bounded and a flood of odd hosts cannot keep out the one in use.
 */
export const checkedHosts = new Map<string, string | null>()
const MAX_CHECKED_HOSTS = 1000

/** The Host header as a URL authority (`host[:port]`, normalised), or `undefined` when it is not one. */
function parseHost(host: string | null): string | undefined {
  if (!host) return undefined
  // Every upgrade asks, usually for the same few hosts: one URL parse per host, not two per request.
  let checked = checkedHosts.get(host)
  if (checked === undefined) {
    checked = authorityOf(host)
    if (checkedHosts.size >= MAX_CHECKED_HOSTS) checkedHosts.delete(checkedHosts.keys().next().value!)
  }
  else {
    checkedHosts.delete(host)
  }
  checkedHosts.set(host, checked)
  return checked ?? undefined
}

function authorityOf(host: string): string | null {
  try {
    const url = new URL(`http://${host}`)
    return url.username || url.password || url.pathname !== '/' || url.search || url.hash ? null : url.host
  }
  catch {
    return null
  }
}

let warnedAboutForwarding = false

/**
 * What admission and the hooks see of a request: its URL with the scheme the client really
 * used (crossws and h3 would believe any `X-Forwarded-Proto`), its headers and client address.
 */
export function describeRequest(url: string, headers: Headers, socket: { remoteAddress?: string, encrypted?: boolean } | undefined, config: ChatRuntimeConfig): ChatRequestInfo {
  if (!config.clientIpHeader && !warnedAboutForwarding && headers.has('x-forwarded-for')) {
    // Behind a proxy every client has the proxy's address: limits per address would count them all as one.
    warnedAboutForwarding = true
    chatLogger.warn('[nuxt-chat] requests carry X-Forwarded-For but `clientIpHeader` is not set: every client counts as the proxy\'s address for `maxConnectionsPerIp` and `rateLimitPerIp`. Set `clientIpHeader` to the header your proxy sets.')
  }
  const origin = `${requestScheme(headers, socket?.encrypted === true, config)}://${parseHost(headers.get('host')) ?? 'localhost'}`
  // Path and query only, set as such: a path like `//evil.example/_ws` must not become the host.
  const path = url.startsWith('/') ? url : url.replace(/^[a-z][\w+.-]*:\/\/[^/?#]*/i, '')
  // After the authority, a path starting with `/` parses as it is set below (one parse instead of three); a `#` would start a fragment.
  if (path.startsWith('/') && !path.includes('#')) return { url: new URL(origin + path), headers, ip: clientIp(headers, socket?.remoteAddress, config) }
  const target = new URL(origin)
  const query = path.indexOf('?')
  target.pathname = query < 0 ? path : path.slice(0, query)
  if (query >= 0) target.search = path.slice(query)
  return { url: target, headers, ip: clientIp(headers, socket?.remoteAddress, config) }
}

/**
 * Is a browser request allowed from its `Origin`? The request's own origin (scheme, host and
 * port), or one listed in `allowedOrigins` (`*` allows all). No `Origin` header: not a browser,
 * allowed. An `Origin` that is not a serialized origin as browsers send it (`HTTP://…`, a
 * default port, `null`) is refused. This stops cross-site WebSocket hijacking: browsers send
 * cookies on cross-site upgrades.
 */
export function isOriginAllowed(origin: string | null, own: string, allowedOrigins: string[]): boolean {
  if (!origin) return true
  return origin === own || isListedOrigin(origin, allowedOrigins)
}

/** Is `origin` (as a browser serializes it) listed in `allowedOrigins`, or does that list hold `'*'`? */
export function isListedOrigin(origin: string, allowedOrigins: string[]): boolean {
  if (allowedOrigins.includes('*')) return true
  if (!URL.canParse(origin) || new URL(origin).origin !== origin) return false
  return allowedOrigins.some(allowed => URL.canParse(allowed) && new URL(allowed).origin === origin)
}

/**
 * Who made a request, as a browser tells (Fetch Metadata and `Origin`; run after the `Origin`
 * check, so an `Origin` here is the app's own or an allowed one):
 * - `page`: a script of such a page (fetch, EventSource, WebSocket);
 * - `elsewhere`: a navigation (a link, a form, a typed address), a subresource (`<img>`, `<iframe>`)
 *   or another site: nothing the app's own client sends;
 * - `unknown`: no browser of today (a server-side client, a test, a browser from before 2023).
 */
export function requestSource(headers: Headers): 'page' | 'elsewhere' | 'unknown' {
  const mode = headers.get('sec-fetch-mode')?.toLowerCase()
  if (mode && FOREIGN_MODES.has(mode)) return 'elsewhere'
  if (headers.has('origin')) return 'page'
  const site = headers.get('sec-fetch-site')?.toLowerCase()
  if (site === undefined) return 'unknown'
  return site === 'same-origin' ? 'page' : 'elsewhere'
}

/** Fetch modes of requests no script made: navigations (a cookie is sent cross-site, with no `Origin`) and no-cors subresources. */
const FOREIGN_MODES = new Set(['navigate', 'nested-navigate', 'no-cors'])

/**
 * Admit a request to a room: the room name, the Host and origin, the guest key, then the app's
 * `chat:identify` hook; a guest's name wish is checked last (`signedInNames`).
 * Throws `ChatRefusal` (400, 401, 403, 500) when the request may not join.
 */
export async function admitRequest(request: ChatRequestInfo, config: ChatRuntimeConfig, hooks: Hookable<ChatRuntimeHooks>, signedInNames: SignedInNames, version?: 2): Promise<ChatAdmission> {
  const query = request.url.searchParams
  // Version 2 joins rooms on the open connection: a room in its URL is a client mistake, said at once.
  if (version === 2 && (query.has('room') || query.has('rooms') || query.has('since') || query.has('dm'))) throw new ChatRefusal(400, 'A version 2 connection has no room in its URL: send `join` once it is open')
  // A rooms list (and a version 2 connection) is in no room: the identify hook sees `room: ''`.
  const rooms = query.has('rooms')
  // `?dm=<user id>` (version 1): the direct room with that user, known once the hook said who asks (docs/PROTOCOL.md, "Direct messages").
  const dm = rooms || version === 2 ? null : query.get('dm')
  if (dm !== null) {
    if (query.has('room')) throw new ChatRefusal(400, '`dm` and `room` cannot go together')
    // Nobody a direct room can be with: the ids `chat:identify` may not name (a guest's, `server`, none a membership holds).
    const problem = identifiedIdProblem(dm)
    if (problem) throw new ChatRefusal(400, `Invalid dm: ${problem}`)
  }
  let room = rooms || version === 2 || dm !== null ? '' : query.get('room') ?? DEFAULT_ROOM
  if (!rooms && version !== 2 && dm === null && !isValidRoom(room)) throw new ChatRefusal(400, 'Invalid room: 1-64 characters from [A-Za-z0-9._:-]')
  if (!parseHost(request.headers.get('host'))) throw new ChatRefusal(400, 'Malformed Host header')
  if (!isOriginAllowed(request.headers.get('origin'), request.url.origin, config.allowedOrigins)) throw new ChatRefusal(403, 'Origin not allowed')
  // A link, form, frame or image (here or on another site) would act with the user's cookie: join, appear online, make a read position.
  const source = requestSource(request.headers)
  if (source === 'elsewhere') throw new ChatRefusal(403, 'Not a request of the app\'s own pages (a navigation, a subresource or another site)')
  // A browser always sends `Origin` on an upgrade; a plain GET needs the page's word for it.
  const createsReadPosition = source === 'page' || request.headers.has('sec-websocket-key')
  const key = query.get('guest')
  if (key !== null && !GUEST_KEY.test(key)) throw new ChatRefusal(400, 'Invalid guest key: 22-64 characters from [A-Za-z0-9_-]')
  const since = parseCursor(request.headers.get('last-event-id') ?? query.get('since'))
  const deltas = query.get('deltas') === '1' ? { deltas: true as const } : {}
  const wish = query.get('name')
  const identifying: ChatIdentifyContext = { request, room, name: normalizeName(wish), ...(dm !== null ? { dm } : {}) }
  const user = await identify(identifying, hooks)
  const data = identifying.data && typeof identifying.data === 'object' ? { data: identifying.data } : {}
  if (dm !== null) {
    if (!user) throw new ChatRefusal(401, 'Sign in to open a direct room: guests have none')
    if (user.id === dm) throw new ChatRefusal(400, 'A direct room needs two different users')
    room = directRoomId(user.id, dm)
    return { room, user, sender: user.id, since, ip: request.ip, createsReadPosition, directWith: dm, ...data, ...deltas }
  }
  if (version === 2) {
    // Identified once for the connection: each room's admission is the `chat:join` hook's and the room's own, so no request is kept.
    const admitted: ChatAdmission = { room, user: user ?? { id: '', name: '' }, sender: '', ip: request.ip, createsReadPosition, version, ...data }
    if (!user) {
      // A guest's name is checked against each room's signed-in names as it joins (not known here).
      const id = guestId(key ?? undefined)
      const checked = wish ? checkGuestName(wish, config.reservedNames ?? [], []) : undefined
      admitted.user = { id, name: checked && 'name' in checked ? checked.name : defaultGuestName(id), guest: true }
      if (checked && 'refused' in checked) admitted.nameRefused = checked.refused
    }
    admitted.sender = admitted.user.id
    return admitted
  }
  if (user) {
    return { room, user, sender: user.id, since, ip: request.ip, createsReadPosition, ...data, ...deltas, ...(rooms ? { rooms: true as const, request: keptRequest(request) } : {}) }
  }
  if (rooms) throw new ChatRefusal(401, 'Sign in to follow your rooms: guests have no read state')
  const id = guestId(key ?? undefined)
  const checked = wish ? checkGuestName(wish, config.reservedNames ?? [], await signedInNames(room)) : undefined
  const guest: ChatUser = { id, name: checked && 'name' in checked ? checked.name : defaultGuestName(id), guest: true }
  const admission: ChatAdmission = { room, user: guest, sender: id, since, ip: request.ip, createsReadPosition: false, ...data, ...deltas }
  if (checked && 'refused' in checked) admission.nameRefused = checked.refused
  return admission
}

/** A copy of a request that outlives it (a rooms list asks the hook with it later): its own headers. */
function keptRequest(request: ChatRequestInfo): ChatRequestInfo {
  return { url: request.url, headers: new Headers(request.headers), ip: request.ip }
}

/** An HTTP error a hook threw, as a refusal; anything else it threw is a bug in the hook, rethrown (the caller logs it and answers 500, without its text). */
function hookRefusal(error: unknown): ChatRefusal {
  const { statusCode, statusMessage, message } = error as { statusCode?: number, statusMessage?: string, message?: string }
  if (!statusCode || statusCode < 400 || statusCode > 599) throw error
  return new ChatRefusal(statusCode, statusMessage || message || 'Not allowed')
}

/**
 * Run the app's `chat:join` hook for `user` entering `room` (`dm`: the other person of a direct
 * room opened by naming them): throws `ChatRefusal` for the HTTP error the hook threw, and 403
 * when it set `allow = false` or `reject`.
 */
export async function askToJoin(room: string, user: ChatUser, hooks: Hookable<ChatRuntimeHooks>, data?: Record<string, unknown>, dm?: string): Promise<void> {
  const context: ChatJoinContext = { room, user, allow: true }
  if (data) context.data = data
  if (dm !== undefined) context.dm = dm
  try {
    await hooks.callHook('chat:join', context)
  }
  catch (error) {
    throw hookRefusal(error)
  }
  if (context.reject !== undefined || !context.allow) throw new ChatRefusal(403, context.reject ? String(context.reject) : 'Not allowed in this room')
}

/**
 * Run the app's `chat:identify` hook: the signed-in user it named, or `undefined` (a guest).
 * Throws `ChatRefusal` for the HTTP error the hook threw; anything else it threw is rethrown.
 */
export async function identify(context: ChatIdentifyContext, hooks: Hookable<ChatRuntimeHooks>): Promise<ChatUser | undefined> {
  try {
    await hooks.callHook('chat:identify', context)
  }
  catch (error) {
    throw hookRefusal(error)
  }
  const identified = context.user && (typeof context.user.id === 'string' || typeof context.user.id === 'number') && String(context.user.id)
  if (!identified) return undefined
  const problem = identifiedIdProblem(identified)
  // A bug in the hook, not the client's doing: thrown as such (logged, the request refused with 500).
  if (problem) throw new Error(`[nuxt-chat] chat:identify named a user ${JSON.stringify(identified.slice(0, 80)).replaceAll('"', '`')}: ${problem}`)
  return { id: identified, name: normalizeName(context.user!.name) ?? identified }
}

/** Why a signed-in user may not have the id `chat:identify` gave, or undefined: one that passes for a guest or the server, or that no membership can hold. */
export function identifiedIdProblem(id: string): string | undefined {
  if (id.startsWith(GUEST_PREFIX)) return 'a signed-in user\'s id may not start with `guest:` (guests\' ids do: they would share messages)'
  if (id === 'server') return 'a signed-in user\'s id may not be `server` (the server\'s own messages\' author)'
  return memberIdProblem(id)
}
