/**
 * The rate limits of the chat in one model (docs/PROTOCOL.md, "Limits"): every limit counts per
 * person; guests and requests not yet identified also count per client address; signed-in people
 * count per address only against a separate, looser ceiling (`signedInIpFactor` times the guests'),
 * so an office behind one NAT address is not refused where one anonymous machine would be.
 */
import { errorFrame, type ChatErrorFrame, type ChatLimitName, type ChatLimitScope } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal } from './access'
import { createRateLimiter, type RateLimitOptions } from './rateLimit'

/** Who a request is, as the limits count it. */
export interface LimitSubject {
  /** User id or guest id. */
  person: string
  /** The client address (see `clientIpHeader`). */
  ip?: string
  /** A guest (or a request not identified yet): counted per address in full. */
  guest?: boolean
}

/** Which count refused, and when a retry can pass. */
export interface LimitRefusal {
  scope: ChatLimitScope
  limit: ChatLimitName
  /** Whole seconds, at least 1. */
  retryAfter: number
}

/** What a limit refused reads like, per limit and scope. */
const REFUSAL_TEXT: Record<ChatLimitName, string> = {
  messages: 'Too many messages',
  history: 'Too many history pages',
  reads: 'Too many read commands',
  rooms: 'Too many new rooms',
  joins: 'Too many joins',
  connections: 'Too many connections',
}

/** The `rate_limited` frame of a refusal (the HTTP transports also send its `retryAfter` as `Retry-After`). */
export function limitRefusalFrame(refusal: LimitRefusal, cid?: string): ChatErrorFrame {
  const whose = refusal.scope === 'address' ? 'from this address' : 'from you'
  return { ...errorFrame('rate_limited', `${REFUSAL_TEXT[refusal.limit]} ${whose}; retry in ${refusal.retryAfter} s`, cid), scope: refusal.scope, limit: refusal.limit, retryAfter: refusal.retryAfter }
}

/** A request a limit refused before or during its admission: answered `429` (version 2: `join_refused`) with the refusal's fields. */
export class ChatLimitRefusal extends ChatRefusal {
  constructor(readonly refusal: LimitRefusal) {
    super(429, limitRefusalFrame(refusal).message)
  }
}

/** Refusals since start, by `limit|scope|who` (`who`: `guest` or `signed_in`); read by the metrics route. */
export const limitRefusals = new Map<string, number>()

/** Count a refusal for the metrics. */
export function countLimitRefusal(refusal: LimitRefusal, subject: Pick<LimitSubject, 'guest'>): void {
  const key = `${refusal.limit}|${refusal.scope}|${subject.guest ? 'guest' : 'signed_in'}`
  limitRefusals.set(key, (limitRefusals.get(key) ?? 0) + 1)
}

/** A limit's three counts: per person, per address for guests, per address for signed-in people. */
interface LimitCounts {
  person?: ReturnType<typeof createRateLimiter>
  guestAddress?: ReturnType<typeof createRateLimiter>
  signedInAddress?: ReturnType<typeof createRateLimiter>
}

/** Bucket names: each counted limit, history's byte budget apart from its page count. */
type Budget = ChatLimitName | 'historyBytes'

function scaled(options: RateLimitOptions, factor: number): RateLimitOptions {
  return { messages: options.messages * factor, interval: options.interval, burst: options.burst * factor }
}

function countsOf(perPerson: false | RateLimitOptions | undefined, perIp: false | RateLimitOptions | undefined, factor: number): LimitCounts {
  return {
    person: perPerson ? createRateLimiter(perPerson) : undefined,
    guestAddress: perIp ? createRateLimiter(perIp) : undefined,
    signedInAddress: perIp && factor > 0 ? createRateLimiter(scaled(perIp, factor)) : undefined,
  }
}

export type ChatLimitsConfig = Pick<ChatRuntimeConfig, 'rateLimit' | 'rateLimitPerIp' | 'historyRateLimit' | 'historyRateLimitPerIp' | 'historyBytes' | 'readRateLimit' | 'readRateLimitPerIp' | 'newRoomRateLimit' | 'newRoomRateLimitPerIp' | 'joinRateLimit' | 'joinRateLimitPerIp' | 'signedInIpFactor'>

/**
 * The chat's rate limits, one set per server instance. `take` checks every count of a limit and
 * takes a token from each or from none; `charge` takes a cost known only afterwards (bytes served).
 */
export function createChatLimits(config: ChatLimitsConfig) {
  const factor = config.signedInIpFactor ?? 0
  const bytes = config.historyBytes ? { messages: config.historyBytes.bytes, interval: config.historyBytes.interval, burst: config.historyBytes.bytes } : false
  const budgets: Record<Budget, LimitCounts> = {
    // `rateLimit: false` turns off both message limits, as it always has.
    messages: countsOf(config.rateLimit, config.rateLimit && config.rateLimitPerIp, factor),
    history: countsOf(config.historyRateLimit, config.historyRateLimitPerIp, factor),
    historyBytes: countsOf(bytes, bytes, factor),
    reads: countsOf(config.readRateLimit, config.readRateLimitPerIp, factor),
    rooms: countsOf(config.newRoomRateLimit, config.newRoomRateLimitPerIp, factor),
    joins: countsOf(config.joinRateLimit, config.joinRateLimitPerIp, factor),
    connections: {},
  }

  /** The buckets a request of `subject` draws from for `budget`, with their scope and key. */
  function bucketsOf(budget: Budget, subject: LimitSubject) {
    const counts = budgets[budget]
    const address = subject.guest ? counts.guestAddress : counts.signedInAddress
    const found: { scope: ChatLimitScope, limiter: NonNullable<LimitCounts['person']>, key: string }[] = []
    if (counts.person) found.push({ scope: 'person', limiter: counts.person, key: subject.person })
    if (address && subject.ip) found.push({ scope: 'address', limiter: address, key: subject.ip })
    return found
  }

  /** The first count of these budgets that would refuse now, as a refusal of `limit`. */
  function refusalOf(limit: ChatLimitName, subject: LimitSubject, checked: Budget[], now: number): LimitRefusal | undefined {
    for (const budget of checked) {
      for (const { scope, limiter, key } of bucketsOf(budget, subject)) {
        if (!limiter.has(key, now)) return { scope, limit, retryAfter: Math.max(1, Math.ceil(limiter.waitFor(key, now) / 1000)) }
      }
    }
    return undefined
  }

  /** The store-read replay under way (or waiting) last, per person (a guest: per address): the next one starts after it (see `replayTurn`). */
  const replayTails = new Map<string, Promise<void>>()

  /** Until `subject`'s history byte budget has room again. */
  async function historyBytesFree(subject: LimitSubject) {
    for (let refused = refusalOf('history', subject, ['historyBytes'], Date.now()); refused; refused = refusalOf('history', subject, ['historyBytes'], Date.now())) {
      await new Promise(resolve => setTimeout(resolve, refused!.retryAfter * 1000).unref?.())
    }
  }

  return {
    /**
     * A join's replay read from the store takes its turn: one person's (a guest address's) go one after another, each once the byte budget
     * has room, so joins sent at once (each checked by `replayRefusal` before any was charged) are served at the budget's
     * pace, not all at once. Resolves to the release, called once the replay was sent and charged (or not sent).
     */
    replayTurn(subject: LimitSubject): Promise<() => void> {
      if (!bytes) return Promise.resolve(() => {})
      // A guest's budget is their address's: guests of one address take turns together.
      const key = subject.guest && subject.ip ? `address:${subject.ip}` : `person:${subject.person}`
      const before = replayTails.get(key) ?? Promise.resolve()
      let release!: () => void
      const done = new Promise<void>(resolve => release = resolve)
      const tail = before.then(() => done)
      replayTails.set(key, tail)
      // (Nothing in the wait throws; were it to, the turn is taken all the same: the queue behind it must go on.)
      return before.then(() => historyBytesFree(subject)).catch(() => {}).then(() => () => {
        release()
        if (replayTails.get(key) === tail) replayTails.delete(key)
      })
    },
    /** One request of `limit` (a history page also needs its byte budget): a token from every count, or the refusal (and nothing taken). Counted for the metrics. */
    take(limit: Exclude<ChatLimitName, 'connections'>, subject: LimitSubject, now = Date.now()): LimitRefusal | undefined {
      const refused = refusalOf(limit, subject, limit === 'history' ? ['history', 'historyBytes'] : [limit], now)
      if (refused) {
        countLimitRefusal(refused, subject)
        return refused
      }
      for (const { limiter, key } of bucketsOf(limit, subject)) limiter.take(key, now)
      return undefined
    },
    /**
     * A new room (`rooms`) whose `invited` members, named at creation, are invites (`messages`, as `invite` is): both counts
     * must pass, and the invites are charged past empty, as a page's bytes are, so a team's room is made at once and the sender's next commands wait.
     */
    takeNewRoom(subject: LimitSubject, invited: number, now = Date.now()): LimitRefusal | undefined {
      const refused = refusalOf('rooms', subject, ['rooms'], now) ?? (invited ? refusalOf('messages', subject, ['messages'], now) : undefined)
      if (refused) {
        countLimitRefusal(refused, subject)
        return refused
      }
      for (const { limiter, key } of bucketsOf('rooms', subject)) limiter.take(key, now)
      if (invited) for (const { limiter, key } of bucketsOf('messages', subject)) limiter.charge(key, invited, now)
      return undefined
    },
    /**
     * A join of a room (docs/PROTOCOL.md, "Limits"): a token of `joins`, and its replay needs the history byte budget
     * (checked here, charged once sent, see `replayRefusal`); the refusal, with nothing taken, when either is spent. Counted for the metrics.
     */
    takeJoin(subject: LimitSubject, now = Date.now()): LimitRefusal | undefined {
      const refused = refusalOf('history', subject, ['historyBytes'], now) ?? refusalOf('joins', subject, ['joins'], now)
      if (refused) {
        countLimitRefusal(refused, subject)
        return refused
      }
      for (const { limiter, key } of bucketsOf('joins', subject)) limiter.take(key, now)
      return undefined
    },
    /**
     * A join's replay is history served too (up to `maxReplay` messages after a cursor): refused,
     * as `history`, while `subject`'s byte budget is spent; its bytes are charged once sent. Counted for the metrics.
     */
    replayRefusal(subject: LimitSubject, now = Date.now()): LimitRefusal | undefined {
      const refused = refusalOf('history', subject, ['historyBytes'], now)
      if (refused) countLimitRefusal(refused, subject)
      return refused
    },
    /** Bytes of history served to `subject`, charged after the page was sent (a budget may run one page into debt). */
    chargeHistoryBytes(subject: LimitSubject, served: number, now = Date.now()): void {
      for (const { limiter, key } of bucketsOf('historyBytes', subject)) limiter.charge(key, served, now)
    },
    /** Forget the buckets that refilled (called on the hub's presence timer). */
    sweep(now = Date.now()) {
      for (const counts of Object.values(budgets)) {
        counts.person?.sweep(now)
        counts.guestAddress?.sweep(now)
        counts.signedInAddress?.sweep(now)
      }
    },
  }
}

export type ChatLimits = ReturnType<typeof createChatLimits>

/** Why the `joins` bursts would refuse a tab rejoining all its rooms at once when it reconnects (fewer than `maxRoomsPerConnection`), or undefined. */
export function joinBurstWarning(config: Pick<ChatRuntimeConfig, 'joinRateLimit' | 'joinRateLimitPerIp' | 'maxRoomsPerConnection'>): string | undefined {
  const rooms = config.maxRoomsPerConnection
  const short = (['joinRateLimit', 'joinRateLimitPerIp'] as const).filter((key) => {
    const limit = config[key]
    return limit !== false && limit.burst < rooms
  })
  if (!short.length) return undefined
  return `[nuxt-chat] ${short.map(key => `${key}.burst`).join(' and ')} is below maxRoomsPerConnection (${rooms}): a tab that reconnects rejoins all its rooms at once, and some would be refused (they retry after \`retryAfter\`)`
}

/** Who an admitted request or connection is, for the limits. */
export function limitSubjectOf(admitted: { sender: string, ip?: string, user: { guest?: boolean } }): LimitSubject {
  return { person: admitted.sender, ip: admitted.ip, guest: admitted.user.guest === true }
}
