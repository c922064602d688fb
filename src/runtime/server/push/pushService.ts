import { randomUUID } from 'node:crypto'
import type { ConsolaInstance } from 'consola'
import type { Hookable } from 'hookable'
import webpush from 'web-push'
import type { ChatMessageFrame, ChatStoredFrame } from '../../shared/protocol'
import type { ChatNotifyContext, ChatPushOptions, ChatRuntimeHooks } from '../../types'
import type { RoomLog } from '../utils/roomLog'
import type { PushSubscriptionRecord } from '../utils/roomLog.push'
import { createLocalBatches, createRedisBatches, type PushBatches } from './pushBatches'
import { postToPushService, PushAddressRefusal } from './pushDelivery'
import { createOnlineCheck, type OnlineCheck } from './pushOnline'

/** A thread's newest replies whose authors are notified of a new one. */
const THREAD_REPLIERS_READ = 50
/** A push service must answer within this. */
const SEND_TIMEOUT = 10_000
/** Pushes in flight at once per instance. */
const MAX_SENDING = 32
/** A VAPID JWT's life, in seconds (RFC 8292: at most 24 hours). */
const VAPID_VALIDITY = 12 * 3600
/** Push service origins whose JWT is kept. */
const MAX_AUDIENCES = 100
/** How often an instance looks for shared batches whose owner is gone, in ms. */
const ORPHAN_SWEEP = 1000
/** A stop waits at most this for the batches it sends itself, in ms: the platform's graceful stop has to close the stores after (Nitro 2 gives it 30 s, srvx 5 s). */
const STOP_SEND_WAIT = 2000

/** Web Push of this instance (docs/PROTOCOL.md, "Notifications"). */
export interface ChatPush {
  /** Both VAPID keys are set. */
  readonly enabled: boolean
  readonly options: Required<ChatPushOptions>
  readonly store: RoomLog
  close: () => Promise<void>
}

export interface ChatPushInput {
  options: Required<ChatPushOptions>
  store: RoomLog
  hooks: Hookable<ChatRuntimeHooks>
  logger: ConsolaInstance
  /** The deployment's Redis (empty: one instance), its bus channel and `presenceInterval`: who is online elsewhere. */
  redisUrl: string
  channel: string
  presenceInterval: number
  /** May `uid` read `room` now (membership, bans, a private room)? A follower who may not is not told of its messages. */
  mayRead: (room: string, uid: string) => Promise<boolean>
  /** A direct room's two people (never a third member); empty for any other room. */
  directPair: (room: string) => Promise<readonly string[]>
}

/** `text` cut to `max` characters (code points), ending in `…` when cut. */
export function shorten(text: string, max: number): string {
  const chars = [...text.replace(/\s+/g, ' ').trim()]
  return chars.length <= max ? chars.join('') : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`
}

/** A batch's title: the sender's name for one message, `"3 new messages from Ann and Ben"` for more. */
export function batchTitle(frames: ChatMessageFrame[], count: number): string {
  const names = [...new Set(frames.map(frame => frame.user))]
  if (count === 1) return names[0] ?? ''
  const from = names.length <= 2 ? names.join(' and ') : `${names.slice(0, 2).join(', ')} and others`
  return `${count} new messages from ${from}`
}

/**
 * Listen to the hub's `chat:stored` and `chat:mention`, batch what each away person should hear
 * of within `window` ms, ask `chat:notify`, and push it to each of their subscriptions.
 */
export function createChatPush({ options, store, hooks, logger, redisUrl, channel, presenceInterval, mayRead, directPair }: ChatPushInput): ChatPush {
  const enabled = Boolean(options.vapidPublicKey && options.vapidPrivateKey)
  const push: ChatPush = { enabled, options, store, close: async () => {} }
  if (!enabled) {
    logger.warn('[nuxt-chat] push is off: set NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY and NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY (`npx web-push generate-vapid-keys`)')
    return push
  }
  const vapidDetails = { subject: options.subject, publicKey: options.vapidPublicKey, privateKey: options.vapidPrivateKey }
  // A bad key or subject is said once at startup, not at every push.
  try {
    webpush.getVapidHeaders('https://push.invalid', vapidDetails.subject, vapidDetails.publicKey, vapidDetails.privateKey, 'aes128gcm')
  }
  catch (error) {
    logger.error('[nuxt-chat] push is off: the VAPID keys or subject are not valid', error instanceof Error ? error.message : error)
    return { ...push, enabled: false }
  }
  const online: OnlineCheck = createOnlineCheck({ redisUrl, channel, interval: presenceInterval, logger })
  const local = createLocalBatches()
  // With Redis, one batch per person across the instances (./pushBatches.ts).
  const batches: PushBatches = online.redis ? createRedisBatches(online.redis, { channel, instanceId: randomUUID(), window: options.window, local, failed: online.failed }) : local
  /** The batches this instance opened, by person: each flushed when its window ends. */
  const timers = new Map<string, ReturnType<typeof setTimeout>>()
  let closed = false
  // Aborts the POSTs still under way once a stop has waited for them (an open request would hold the process past its stop).
  const stopping = new AbortController()
  const flushLogged = (uid: string) => flush(uid).catch(error => logger.error('[nuxt-chat] push failed', error))

  async function enqueue(uid: string, frame: ChatMessageFrame) {
    if (closed || !await batches.add(uid, frame) || closed) return
    timers.set(uid, setTimeout(() => {
      timers.delete(uid)
      void flushLogged(uid)
    }, options.window))
  }

  // A shared batch whose owner died or stopped within its window is flushed here instead.
  const sweep = batches.claimOrphans && setInterval(() => {
    if (online.redis?.status !== 'ready') return
    batches.claimOrphans!().then(uids => uids.forEach(uid => void flushLogged(uid)), online.failed)
  }, ORPHAN_SWEEP)
  sweep?.unref()

  /** Who follows a stored message besides those it mentions: a direct room's other member, a thread's parent author and earlier repliers, who may still read the room. */
  async function followersOf(frame: ChatMessageFrame): Promise<string[]> {
    const uids = new Set<string>()
    if (frame.room.startsWith('dm:')) for (const uid of await directPair(frame.room)) uids.add(uid)
    if (frame.thread !== undefined) {
      const parent = await store.message(frame.room, frame.thread)
      if (parent?.uid) uids.add(parent.uid)
      for (const reply of await store.before(frame.room, frame.id, THREAD_REPLIERS_READ, frame.thread)) if (reply.uid) uids.add(reply.uid)
    }
    uids.delete(frame.uid ?? '')
    const readers = await Promise.all([...uids].map(async uid => !uid.startsWith('guest:') && await mayRead(frame.room, uid)))
    return [...uids].filter((_, index) => readers[index])
  }

  async function flush(uid: string) {
    const batch = await batches.take(uid)
    if (!batch.frames.length || closed || await online.isOnline(uid)) return
    const muted = new Set(await store.pushMutedRooms(uid, options.maxMutes))
    const frames = batch.frames.filter(frame => !muted.has(frame.room))
    const count = batch.count - (batch.frames.length - frames.length)
    const newest = frames.at(-1)
    if (!newest) return
    const subscriptions = await store.pushSubscriptions(uid)
    const context: ChatNotifyContext = {
      uid,
      room: newest.room,
      messages: frames,
      title: shorten(batchTitle(frames, count), options.maxLength),
      body: shorten(newest.message, options.maxLength),
      url: options.url.replaceAll('{room}', encodeURIComponent(newest.room)),
      send: subscriptions.length > 0,
    }
    try {
      await hooks.callHook('chat:notify', context)
    }
    catch (error) {
      logger.error('[nuxt-chat] the chat:notify hook failed: nothing was pushed', error)
      return
    }
    if (!context.send || !subscriptions.length) return
    const payload = JSON.stringify({
      title: shorten(String(context.title), options.maxLength),
      body: shorten(String(context.body), options.maxLength),
      room: context.room,
      url: context.url,
      count,
      tag: `chat:${context.room}`,
    })
    await Promise.all(subscriptions.map(subscription => inTurn(() => send(subscription, payload))))
  }

  /** At most `MAX_SENDING` pushes in flight (an `@room` of a large room is many at once); the rest wait their turn. */
  let sending = 0
  const waiting: (() => void)[] = []
  async function inTurn(task: () => Promise<void>) {
    if (sending >= MAX_SENDING) await new Promise<void>(resolve => waiting.push(resolve))
    sending++
    try {
      await task()
    }
    finally {
      sending--
      waiting.shift()?.()
    }
  }

  /** The VAPID JWT of each push service (its origin is the audience), signed once for `VAPID_VALIDITY` seconds and reused until an hour before it ends: a signature costs more than the encryption. */
  const authorizations = new Map<string, { header: string, renewAt: number }>()
  function authorizationFor(audience: string): string {
    const now = Date.now()
    const held = authorizations.get(audience)
    if (held && held.renewAt > now) return held.header
    // Push services are a handful of origins; a bound all the same.
    if (authorizations.size >= MAX_AUDIENCES) authorizations.clear()
    const expiration = Math.floor(now / 1000) + VAPID_VALIDITY
    const { Authorization } = webpush.getVapidHeaders(audience, vapidDetails.subject, vapidDetails.publicKey, vapidDetails.privateKey, 'aes128gcm', expiration) as { Authorization: string }
    authorizations.set(audience, { header: Authorization, renewAt: now + (VAPID_VALIDITY - 3600) * 1000 })
    return Authorization
  }

  /** One encrypted, signed POST to a push service; a 404 or 410 deletes the subscription. */
  async function send(subscription: PushSubscriptionRecord, payload: string) {
    try {
      const details = webpush.generateRequestDetails({ endpoint: subscription.endpoint, keys: { p256dh: subscription.p256dh, auth: subscription.auth } }, payload, { TTL: options.ttl, urgency: 'normal', contentEncoding: 'aes128gcm' })
      const headers = Object.fromEntries(Object.entries(details.headers).filter(([name]) => name.toLowerCase() !== 'content-length').map(([name, value]) => [name, String(value)]))
      headers.Authorization = authorizationFor(new URL(subscription.endpoint).origin)
      const status = await postToPushService(details.endpoint, headers, new Uint8Array(details.body as Buffer), { insecureLoopback: options.insecureLoopback, timeout: SEND_TIMEOUT, signal: stopping.signal })
      if (status === 404 || status === 410) {
        await store.pushForget(subscription.endpoint)
        return
      }
      if (status < 200 || status > 299) logger.warn(`[nuxt-chat] a push service answered ${status}: the notification was dropped`)
    }
    catch (error) {
      if (error instanceof PushAddressRefusal) {
        // Its name leads into a private network: never asked again (said once it is so).
        await store.pushForget(subscription.endpoint).catch(() => {})
        logger.warn(`[nuxt-chat] ${error.message}: the subscription is removed`)
        return
      }
      logger.warn('[nuxt-chat] a push service could not be reached: the notification was dropped', error instanceof Error ? error.message : error)
    }
  }

  /** Batch a message for `uid` unless they were connected when it was stored (they got it): who is away is asked again when the batch is due. */
  async function notify(uid: string, frame: ChatMessageFrame) {
    if (closed || !uid || uid === frame.uid || uid.startsWith('guest:')) return
    if (!await online.isOnline(uid, frame.ts)) await enqueue(uid, frame)
  }

  const unhookStored = hooks.hook('chat:stored', ({ frame }: { frame: ChatStoredFrame }) => {
    if (frame.type !== 'message' || frame.deleted) return
    const message = frame as ChatMessageFrame
    // Not awaited: the other hooks and the next message never wait for the store's reads.
    void followersOf(message).then(uids => Promise.all(uids.map(uid => notify(uid, message)))).catch(error => logger.error('[nuxt-chat] push: could not read who follows a message', error))
  })
  const unhookMention = hooks.hook('chat:mention', ({ uid, frame }) => {
    void notify(uid, frame).catch(error => logger.error('[nuxt-chat] push failed', error))
  })

  push.close = async () => {
    unhookStored()
    unhookMention()
    if (sweep) clearInterval(sweep)
    const open = [...timers.keys()]
    for (const timer of timers.values()) clearTimeout(timer)
    timers.clear()
    // Nothing open is lost by stopping: a batch in this instance's memory (no Redis, or Redis failed) goes out now, a shared one to another instance.
    const held = open.filter(uid => batches.holds(uid))
    const shared = open.filter(uid => !batches.holds(uid))
    if (shared.length && batches.release) await batches.release(shared).catch(online.failed)
    let waited: ReturnType<typeof setTimeout> | undefined
    const sent = Promise.all(held.map(flushLogged)).then(() => true)
    if (!await Promise.race([sent, new Promise<false>(resolve => waited = setTimeout(resolve, STOP_SEND_WAIT, false))])) {
      logger.warn(`[nuxt-chat] push: the server stopped before every notification it held was sent (${held.length} batches, ${STOP_SEND_WAIT} ms)`)
    }
    clearTimeout(waited)
    stopping.abort()
    closed = true
    batches.clear()
    await online.close()
  }
  return push
}
