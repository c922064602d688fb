/**
 * Open connections per address and per person (docs/PROTOCOL.md, "Limits"): guests, requests
 * not yet identified and sockets whose headers have not arrived count against their address's
 * `maxConnectionsPerIp` (each in a count of its own); a signed-in person's connections count
 * against `maxConnectionsPerUser` and against their address's separate signed-in ceiling
 * (`signedInIpFactor` times the cap).
 */
import type { ChatRuntimeConfig } from '../../types'
import { countLimitRefusal, type LimitRefusal, type LimitSubject } from './chatLimits'

/** Seconds a client at a connection cap should wait before trying again. */
export const CONNECTION_CAP_RETRY = 5

type Counts = Map<string, number>
/** Guests, unidentified requests and header-less sockets, by address. */
const guestsByIp: Counts = new Map()
/** Signed-in people's connections, by address (their looser ceiling). */
const signedInByIp: Counts = new Map()
/** Signed-in people's connections, by user id. */
const byPerson: Counts = new Map()
/** Sockets whose first request's headers have not arrived, by address: their own count, so page loads are not refused when an address's guests are at their cap. */
const headerlessByIp: Counts = new Map()
/** Requests in `chat:identify`, by address: their own count, so an address whose guests are at their cap still lets its signed-in people in. */
const pendingByIp: Counts = new Map()

function add(counts: Counts, key: string) {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

function remove(counts: Counts, key: string) {
  const left = (counts.get(key) ?? 1) - 1
  if (left > 0) counts.set(key, left)
  else counts.delete(key)
}

/**
 * A connection counted against its caps; `release` frees its slots, once.
 * An object, not a closure: one stays with every open connection.
 */
export class ConnectionHold {
  // Set in the constructor: in-object slots.
  declare private ip: string | undefined
  declare private person: string | undefined
  declare private byIp: Counts

  constructor(ip: string | undefined, person: string | undefined, byIp: Counts) {
    this.ip = ip
    this.person = person
    this.byIp = byIp
  }

  release(): void {
    const { ip, person } = this
    this.ip = this.person = undefined
    if (ip !== undefined) remove(this.byIp, ip)
    if (person !== undefined) {
      remove(byPerson, person)
      if (!byPerson.has(person)) personLeft(person)
    }
  }
}

/** What every connection holds when nothing is counted. */
const NOTHING_HELD = new ConnectionHold(undefined, undefined, guestsByIp)

type CapConfig = Pick<ChatRuntimeConfig, 'maxConnectionsPerIp' | 'maxConnectionsPerUser' | 'signedInIpFactor'>

/** Which cap a new connection of `subject` would pass, or the refusal. */
function capRefusal(subject: LimitSubject, config: CapConfig): LimitRefusal | undefined {
  const { ip, person, guest } = subject
  const refusal = (scope: LimitRefusal['scope']): LimitRefusal => ({ scope, limit: 'connections', retryAfter: CONNECTION_CAP_RETRY })
  if (guest) return config.maxConnectionsPerIp && ip && (guestsByIp.get(ip) ?? 0) >= config.maxConnectionsPerIp ? refusal('address') : undefined
  if (config.maxConnectionsPerUser && (byPerson.get(person) ?? 0) >= config.maxConnectionsPerUser) return refusal('person')
  const ceiling = config.maxConnectionsPerIp * (config.signedInIpFactor ?? 0)
  if (ceiling && ip && (signedInByIp.get(ip) ?? 0) >= ceiling) return refusal('address')
  return undefined
}

/** Would a new connection of `subject` be refused by a cap now? */
export function connectionCapRefusal(subject: LimitSubject, config: CapConfig): LimitRefusal | undefined {
  return capRefusal(subject, config)
}

/**
 * Count a connection of `subject` (a guest, or `guest: true` for one not identified yet) against
 * its caps. Returns its hold (`release()` once it ends), or the refusal (counted for the metrics).
 */
export function holdConnection(subject: LimitSubject, config: CapConfig): ConnectionHold | LimitRefusal {
  const refused = capRefusal(subject, config)
  if (refused) {
    countLimitRefusal(refused, subject)
    return refused
  }
  const { ip, person, guest } = subject
  if (guest) {
    // No cap or no address: nothing to count, nothing to allocate per connection.
    if (!config.maxConnectionsPerIp || !ip) return NOTHING_HELD
    add(guestsByIp, ip)
    return new ConnectionHold(ip, undefined, guestsByIp)
  }
  const countIp = config.maxConnectionsPerIp && config.signedInIpFactor && ip ? ip : undefined
  // Counted without a cap too: Web Push asks who has an open connection (openConnectionsOf).
  if (countIp !== undefined) add(signedInByIp, countIp)
  add(byPerson, person)
  return new ConnectionHold(countIp, person, signedInByIp)
}

/** One more of `counts` (sockets or requests not yet identified) from `ip`, up to `maxConnectionsPerIp`: its hold, or the refusal (counted for the metrics). */
function holdUnidentified(counts: Counts, ip: string | undefined, config: CapConfig): ConnectionHold | LimitRefusal {
  if (!config.maxConnectionsPerIp || !ip) return NOTHING_HELD
  if ((counts.get(ip) ?? 0) >= config.maxConnectionsPerIp) {
    const refused: LimitRefusal = { scope: 'address', limit: 'connections', retryAfter: CONNECTION_CAP_RETRY }
    countLimitRefusal(refused, { guest: true })
    return refused
  }
  add(counts, ip)
  return new ConnectionHold(ip, undefined, counts)
}

/** A socket whose first request's headers have not arrived (./incomingSockets.ts): at most `maxConnectionsPerIp` of them per address. */
export function holdHeaderless(ip: string, config: CapConfig): ConnectionHold | LimitRefusal {
  return holdUnidentified(headerlessByIp, ip, config)
}

/** A request not identified yet (an upgrade or request in `chat:identify`): at most `maxConnectionsPerIp` of them per address, apart from its connected guests. */
export function holdPending(ip: string | undefined, config: CapConfig): ConnectionHold | LimitRefusal {
  return holdUnidentified(pendingByIp, ip, config)
}

/** Open guest connections counted now of an address (for tests and the DevTools tab). */
export function guestConnectionsOf(ip: string): number {
  return guestsByIp.get(ip) ?? 0
}

/** When each person's last connection here closed, least recent first (at most `MAX_LEFT`): Web Push asks whether someone was connected when a message was stored. */
const leftAt = new Map<string, number>()
const MAX_LEFT = 10_000

function personLeft(person: string) {
  leftAt.delete(person)
  leftAt.set(person, Date.now())
  if (leftAt.size > MAX_LEFT) leftAt.delete(leftAt.keys().next().value!)
}

/** When a signed-in person's last connection on this instance closed (epoch ms), if it did lately. */
export function lastLeftAt(uid: string): number | undefined {
  return leftAt.get(uid)
}

/** Open connections (WebSocket, SSE, open requests) of a signed-in person on this instance: Web Push notifies only people with none. */
export function openConnectionsOf(uid: string): number {
  return byPerson.get(uid) ?? 0
}

/** The signed-in people with an open connection on this instance. */
export function connectedPeople(): IterableIterator<string> {
  return byPerson.keys()
}
