import type { Hookable } from 'hookable'
import { errorFrame, type ChatErrorFrame, type ChatMessageFrame, type ChatUser } from '../../shared/protocol'
import type { ChatMessageContext, ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { createRateLimiter } from './rateLimit'
import { RoomLogInputError, type RoomLog } from './roomLog'
import { messageFrame, type Member } from './roomDelivery'

/** One message handed to the hub by a transport. */
export interface SendInput {
  room: string
  user: ChatUser
  sender: string
  message: string
  cid?: string
  /** The sending connection; absent for HTTP POST. */
  member?: Member
  /** The client address, for the per-address rate limit. */
  ip?: string
  /** Sent by the app's own server code (`useChatServer().send`): no rate limit applies. */
  fromServer?: boolean
  /** Called once the message is handed to the store (appends are stored in the order handed). */
  onQueued?: () => void
}

export interface SendResult {
  /** The stored message frame (new or, for a repeated `cid`, the earlier one). */
  frame?: ChatMessageFrame
  duplicate?: boolean
  error?: ChatErrorFrame
  /** HTTP status for the POST transport. */
  status: number
}

/** Decides whether a message may pass the rate limit; false answers `rate_limited`. */
export type AllowSend = (input: SendInput) => boolean

/**
 * The default limit: a token bucket per person (`sender`: user id or guest id) and a second,
 * higher one per client address (`rateLimitPerIp`), each shared by all connections and POSTs;
 * a message takes a token from both or from neither. `rateLimit: false` turns both off.
 * `sweep` forgets the buckets that refilled.
 */
export function createSendLimiter({ rateLimit, rateLimitPerIp }: Pick<ChatRuntimeConfig, 'rateLimit' | 'rateLimitPerIp'>): { allowSend: AllowSend, sweep: () => void } {
  if (!rateLimit) return { allowSend: () => true, sweep: () => {} }
  const perPerson = createRateLimiter(rateLimit)
  const perAddress = rateLimitPerIp ? createRateLimiter(rateLimitPerIp) : undefined
  return {
    allowSend({ sender, ip }) {
      const address = perAddress && ip
      if (!perPerson.has(sender) || (address && !perAddress.has(address))) return false
      perPerson.take(sender)
      if (address) perAddress.take(address)
      return true
    },
    sweep() {
      perPerson.sweep()
      perAddress?.sweep()
    },
  }
}

export interface SendPipelineOptions {
  config: Pick<ChatRuntimeConfig, 'maxLength'>
  store: Pick<RoomLog, 'append'>
  hooks: Hookable<ChatRuntimeHooks>
  /** Where failures to read the store are reported. */
  logger: { error: (message: string, error?: unknown) => void }
  /** The rate limit, pluggable: see `createSendLimiter` for the default. */
  allowSend: AllowSend
  /** Fan a newly stored message out (here and to other instances). Not called for duplicates. */
  onStored: (frame: ChatMessageFrame, text: string) => void
}

/**
 * The send pipeline: size and emptiness, rate limit, the `chat:message` hook, the store, then
 * `onStored` for the fan-out.
 */
export function createSendPipeline({ config, store, hooks, logger, allowSend, onStored }: SendPipelineOptions) {
  return async function send(input: SendInput): Promise<SendResult> {
    const fail = (status: number, code: ChatErrorFrame['code'], text: string): SendResult => ({ status, error: errorFrame(code, text, input.cid) })
    // Lone surrogates and NUL cannot be stored as text everywhere (PostgreSQL refuses NUL).
    let text = input.message.toWellFormed().replaceAll('\0', '')
    if (!text.trim()) return fail(400, 'empty', 'Message is empty')
    if (text.length > config.maxLength) return fail(413, 'too_long', `Message is longer than ${config.maxLength} characters`)
    if (!input.fromServer && !allowSend(input)) return fail(429, 'rate_limited', 'Too many messages; slow down')
    const context: ChatMessageContext = { room: input.room, user: input.user, message: text, cid: input.cid }
    try {
      await hooks.callHook('chat:message', context)
    }
    catch (error) {
      const { statusCode, statusMessage } = error as { statusCode?: number, statusMessage?: string }
      // `throw createError({ statusMessage })` refuses the message; any other exception is a bug in the hook.
      if (!statusCode) {
        logger.error('[nuxt-chat] the chat:message hook failed', error)
        return fail(503, 'unavailable', 'The message could not be checked; try again')
      }
      context.reject = statusMessage || 'Message rejected'
    }
    if (context.reject !== undefined) return fail(403, 'rejected', String(context.reject))
    text = typeof context.message === 'string' ? context.message : text
    if (!text.trim()) return fail(400, 'empty', 'Message is empty')

    let result
    try {
      const appending = store.append({ room: input.room, user: input.user.name, sender: input.sender, guest: input.user.guest, message: text, ts: Date.now(), cid: input.cid })
      input.onQueued?.()
      result = await appending
    }
    catch (error) {
      // A value the store cannot hold is the sender's to fix: a retry would fail the same way.
      if (error instanceof RoomLogInputError) return fail(400, 'bad_request', error.message)
      logger.error('[nuxt-chat] could not store a message', error)
      return fail(503, 'unavailable', 'The message could not be stored; try again')
    }
    const frame = messageFrame(result.message)
    if (result.duplicate) return { status: 200, frame, duplicate: true }

    // Retention runs on its own timer (see retention.ts), never on the send path.
    onStored(frame, JSON.stringify(frame))
    return { status: 200, frame }
  }
}
