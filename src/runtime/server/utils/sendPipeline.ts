import type { Hookable } from 'hookable'
import { errorFrame, type ChatClientCommand, type ChatErrorFrame, type ChatFile, type ChatMessageFrame, type ChatStoredFrame, type ChatUser } from '../../shared/protocol'
import type { ChatActionContext, ChatMessageContext, ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { checkChatPayload, type ChatPayloadCheck } from './chatSchema'
import { createChatLimits, limitRefusalFrame, limitSubjectOf, type ChatLimits, type ChatLimitsConfig, type LimitRefusal } from './chatLimits'
import { RoomLogInputError, RoomLogRefusal, type RoomLog, type StoredMessage } from './roomLog'
import { messageFrame, type Member } from './roomDelivery'
import type { FoundMentions } from './mentions'

/** An edit, delete or reaction toggle of message `target` (revision 3). */
export interface SendAction {
  kind: 'edit' | 'delete' | 'reaction'
  target: number
  /** `reaction`: the emoji to toggle. */
  emoji?: string
}

export { MAX_EMOJIS_PER_MESSAGE, MAX_REACTIONS_PER_PERSON } from './roomLog'

/** The text and the action of a parsed `message` / `edit` / `delete` / `reaction` command, for `SendInput`. */
export function sendFieldsOf(command: Extract<ChatClientCommand, { type: 'message' | 'edit' | 'delete' | 'reaction' }>): { message: string, action?: SendAction, replyTo?: number, thread?: number, alsoInRoom?: true, files?: string[] } {
  switch (command.type) {
    case 'message': {
      const { message, replyTo, thread, alsoInRoom, files } = command
      return { message, ...(replyTo === undefined ? {} : { replyTo }), ...(thread === undefined ? {} : { thread }), ...(alsoInRoom ? { alsoInRoom } : {}), ...(files ? { files } : {}) }
    }
    case 'edit': return { message: command.message, action: { kind: 'edit', target: command.target } }
    case 'delete': return { message: '', action: { kind: 'delete', target: command.target } }
    case 'reaction': return { message: '', action: { kind: 'reaction', target: command.target, emoji: command.emoji } }
  }
}

/** One message handed to the hub by a transport. */
export interface SendInput {
  room: string
  user: ChatUser
  sender: string
  message: string
  cid?: string
  /** Edit or delete message `target` instead of sending a message (revision 3); `message` is the new text of an edit. */
  action?: SendAction
  /** A message: the id of the room's live message it answers (docs/PROTOCOL.md, "Replies"). */
  replyTo?: number
  /** A thread reply: its parent's id, and whether it is also sent to the room (docs/PROTOCOL.md, "Threads"). */
  thread?: number
  alsoInRoom?: true
  /** A message: the ids of its attachments, uploaded by the sender to the room (docs/PROTOCOL.md, "Attachments"). */
  files?: string[]
  /** The sending connection; absent for HTTP POST. */
  member?: Member
  /** The client address, for the per-address rate limit. */
  ip?: string
  /** The sender is an owner or moderator of the room (set by the room's admission): they may delete anyone's message. */
  moderator?: boolean
  /** Sent by the app's own server code (`useChatServer().send`): no rate limit applies. */
  fromServer?: boolean
  /** Called once the message is handed to the store (appends are stored in the order handed). */
  onQueued?: () => void
}

export interface SendResult {
  /** The stored frame (new or, for a repeated `cid`, the earlier one): a message, or an edit / delete event. */
  frame?: ChatStoredFrame
  duplicate?: boolean
  error?: ChatErrorFrame
  /** HTTP status for the POST transport. */
  status: number
}

/** Uploads reserved for one message: their metadata, and what to do once it is stored or not. */
export interface ClaimedFiles {
  files: ChatFile[]
  /** The message was stored as `id`: the uploads are its own. */
  attach: (id: number) => Promise<void>
  /** The message was not stored (or was a duplicate): the uploads are free again. */
  release: () => Promise<void>
}

/** Reserve a message's uploads (`input.files`) for it, or refuse: status, code and text. */
export type ClaimFiles = (input: SendInput) => Promise<ClaimedFiles | [number, ChatErrorFrame['code'], string]>

/** Decides whether a message may pass the rate limit: `true`, or the refusal (`false`: a plain `rate_limited`). */
export type AllowSend = (input: SendInput) => boolean | LimitRefusal

/**
 * The default limit (the `messages` limit of ./chatLimits.ts): a token bucket per person (`sender`:
 * user id or guest id) and, for guests, one per client address (`rateLimitPerIp`); signed-in
 * people's address has a looser one (`signedInIpFactor` times). A message takes a token from
 * each or from none. `rateLimit: false` turns them off. `sweep` forgets the buckets that refilled.
 */
export function createSendLimiter(config: Partial<ChatLimitsConfig> & Pick<ChatRuntimeConfig, 'rateLimit' | 'rateLimitPerIp'>, limits: ChatLimits = createChatLimits(config as ChatLimitsConfig)): { allowSend: AllowSend, sweep: () => void } {
  return {
    allowSend: input => limits.take('messages', limitSubjectOf(input)) ?? true,
    sweep: () => limits.sweep(),
  }
}

export interface SendPipelineOptions {
  config: Pick<ChatRuntimeConfig, 'maxLength'> & Partial<Pick<ChatRuntimeConfig, 'editWindow'>>
  store: Pick<RoomLog, 'append'> & Partial<Pick<RoomLog, 'byCid' | 'message'>>
  hooks: Hookable<ChatRuntimeHooks>
  /** Where failures to read the store are reported. */
  logger: { error: (message: string, error?: unknown) => void }
  /** The rate limit, pluggable: see `createSendLimiter` for the default. */
  allowSend: AllowSend
  /** Fan a newly stored message or event out (here and to other instances). Not called for duplicates. */
  onStored: (frame: ChatStoredFrame, text: string) => void
  /** Validate a message against its room's schema (see `defineChatSchema`). @default checkChatPayload */
  checkPayload?: (room: string, text: string) => Promise<ChatPayloadCheck>
  /** What a message's text mentions (docs/PROTOCOL.md, "Mentions"); at once when known. @default nothing */
  resolveMentions?: (input: SendInput, text: string) => FoundMentions | Promise<FoundMentions>
  /** A new message that mentions someone was stored and handed to `onStored`: tell whom it concerns (`chat:mention`). */
  onMentioned?: (frame: ChatMessageFrame, found: FoundMentions) => void
  /** Would this message make a new room, past the sender's new-room limit? The refusal then. @default never */
  newRoomRefusal?: (input: SendInput) => Promise<LimitRefusal | undefined> | undefined
  /** Attachments (docs/PROTOCOL.md, "Attachments"): reserve a message's uploads. @default none: a message with `files` is refused */
  claimFiles?: ClaimFiles
}

/**
 * The send pipeline: size and emptiness, rate limit, the `chat:message` hook, the room's schema,
 * the store, then `onStored` for the fan-out.
 */
export function createSendPipeline({ config, store: stores, hooks, logger, allowSend, onStored, checkPayload = checkChatPayload, newRoomRefusal, resolveMentions, onMentioned, claimFiles }: SendPipelineOptions) {
  async function send(input: SendInput): Promise<SendResult> {
    const fail = (status: number, code: ChatErrorFrame['code'], text: string): SendResult => ({ status, error: errorFrame(code, text, input.cid) })
    const { action } = input
    // Lone surrogates and NUL cannot be stored as text everywhere (PostgreSQL refuses NUL).
    const textless = action?.kind === 'delete' || action?.kind === 'reaction'
    let text = textless ? '' : input.message.toWellFormed().replaceAll('\0', '')
    // A message may be its attachments alone.
    const withFiles = !action && input.files !== undefined && input.files.length > 0
    if (withFiles && !claimFiles) return fail(400, 'bad_request', 'Attachments are turned off')
    if (!textless) {
      if (!text.trim() && !withFiles) return fail(400, 'empty', 'Message is empty')
      if (text.length > config.maxLength) return fail(413, 'too_long', `Message is longer than ${config.maxLength} characters`)
    }
    if (!input.fromServer) {
      const allowed = allowSend(input)
      if (allowed === false) return fail(429, 'rate_limited', 'Too many messages; slow down')
      if (allowed !== true) return { status: 429, error: limitRefusalFrame(allowed, input.cid) }
    }
    if (action) {
      // A resent edit or delete that was stored is answered as stored, whatever its target became since.
      const stored = input.cid === undefined ? undefined : await stores.byCid!(input.room, input.sender, input.cid).catch(() => undefined)
      if (stored) return { status: 200, frame: messageFrame(stored), duplicate: true }
      const checked = await checkAction(input, action)
      if (typeof checked !== 'string') return fail(...checked)
      if (textless) return store(input, checked)
    }
    else {
      // A thread hangs from a message in no thread itself.
      const refused = (input.replyTo !== undefined ? await checkNamed(input, input.replyTo, () => true, `No message ${input.replyTo} to reply to in this room`) : undefined)
        ?? (input.thread !== undefined ? await checkNamed(input, input.thread, parent => parent.thread === undefined, `No message ${input.thread} to answer in a thread`) : undefined)
      if (refused) return fail(...refused)
    }
    const context: ChatMessageContext = { room: input.room, user: input.user, message: text, cid: input.cid }
    if (!await callRefusableHook('chat:message', context, 'Message rejected')) return fail(503, 'unavailable', 'The message could not be checked; try again')
    if (context.reject !== undefined) return fail(403, 'rejected', String(context.reject))
    text = typeof context.message === 'string' ? context.message : text
    if (!text.trim() && !withFiles) return fail(400, 'empty', 'Message is empty')
    // After the hook, so what is stored (a rewritten message or edit too) is what the room's schema accepts.
    const checked = await checkPayload(input.room, text)
    if ('error' in checked) return fail(400, 'bad_request', checked.error)
    // Last before the store: a message refused for another reason makes no room and takes no token.
    // No await for a room known to have messages: its messages take no extra turn.
    const checking = !action && !input.fromServer ? newRoomRefusal?.(input) : undefined
    const newRoom = checking && await checking
    if (newRoom) return { status: 429, error: limitRefusalFrame(newRoom, input.cid) }
    if (action) return store(input, checked.text)
    let claimed: ClaimedFiles | undefined
    if (withFiles) {
      // A resend of a stored message is answered as stored: its uploads are taken, by it.
      const stored = input.cid === undefined ? undefined : await stores.byCid?.(input.room, input.sender, input.cid).catch(() => undefined)
      if (stored) return { status: 200, frame: messageFrame(stored), duplicate: true }
      const claiming = await claimFiles!(input)
      if (Array.isArray(claiming)) return fail(...claiming)
      claimed = claiming
    }
    if (!resolveMentions) return store(input, checked.text, undefined, claimed)
    let mentioned
    try {
      // At once when the room's names are known: most messages take no extra turn.
      const resolving = resolveMentions(input, checked.text)
      mentioned = resolving instanceof Promise ? await resolving : resolving
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a room\'s names', error)
      await claimed?.release()
      return fail(503, 'unavailable', 'The message could not be stored; try again')
    }
    return store(input, checked.text, mentioned, claimed)
  }

  /** Why a message may not answer message `id` (none of the room's live messages), or nothing. */
  /**
   * The live message `id` of the room that a reply quotes or a thread hangs from (`allowed` says whether this one may be):
   * undefined when it may be named, else the refusal (`bad_request` with `refused`, or `unavailable` when the store failed).
   */
  async function checkNamed(input: SendInput, id: number, allowed: (message: StoredMessage) => boolean, refused: string): Promise<[number, ChatErrorFrame['code'], string] | undefined> {
    let named
    try {
      named = await stores.message!(input.room, id)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a message', error)
      return [503, 'unavailable', 'The message could not be read; try again']
    }
    return named && !named.kind && !named.deleted && allowed(named) ? undefined : [400, 'bad_request', refused]
  }

  /**
   * Call a hook that may refuse: `throw createError({ statusMessage })` sets `context.reject`
   * (`fallback` without a message). Any other exception is a bug in the hook: logged, and false.
   */
  async function callRefusableHook<K extends 'chat:message' | 'chat:action'>(name: K, context: Parameters<ChatRuntimeHooks[K]>[0], fallback: string): Promise<boolean> {
    try {
      await (hooks.callHook as (hook: string, payload: unknown) => Promise<unknown>)(name, context)
    }
    catch (error) {
      const { statusCode, statusMessage } = error as { statusCode?: number, statusMessage?: string }
      if (!statusCode) {
        logger.error(`[nuxt-chat] the ${name} hook failed`, error)
        return false
      }
      context.reject = statusMessage || fallback
    }
    return true
  }

  /**
   * May `input.user` edit or delete the target? Their own message: yes (an edit only within
   * `editWindow`); anyone else's: only if the `chat:action` hook sets `allow`. The hook may
   * also refuse. Reactions: anyone; the store decides the toggle and the bounds. Returns the
   * text to store (a reaction: its emoji), or the refusal's status, code and text.
   */
  async function checkAction(input: SendInput, action: SendAction): Promise<string | [number, ChatErrorFrame['code'], string]> {
    let target
    try {
      target = await stores.message!(input.room, action.target)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a message', error)
      return [503, 'unavailable', 'The message could not be read; try again']
    }
    if (!target || target.kind || target.deleted) return [404, 'not_found', `No message ${action.target} in this room`]
    // The store decides whether a toggle adds or takes back, within the bounds, atomically per message.
    if (action.kind === 'reaction') return action.emoji!
    const own = target.uid !== undefined && target.uid === input.sender
    const inWindow = !config.editWindow || Date.now() - target.ts <= config.editWindow
    const context: ChatActionContext = { room: input.room, user: input.user, action: action.kind, target: messageFrame(target) as ChatMessageFrame, allow: input.fromServer === true || (own && (action.kind === 'delete' || inWindow)) || (action.kind === 'delete' && input.moderator === true) }
    if (!await callRefusableHook('chat:action', context, 'Not allowed')) return [503, 'unavailable', 'The change could not be checked; try again']
    if (context.reject !== undefined) return [403, 'forbidden', String(context.reject)]
    if (!context.allow) return [403, 'forbidden', !own ? `You may only ${action.kind} your own messages` : `Messages can be edited for ${Math.round(config.editWindow! / 1000)} s`]
    return input.message
  }

  /** Append the message or event (the store applies an event to its target with it), then fan it out. */
  async function store(input: SendInput, text: string, mentioned?: FoundMentions, claimed?: ClaimedFiles): Promise<SendResult> {
    const result = await storeChecked(input, text, mentioned, claimed?.files)
    if (!claimed) return result
    // Stored: the uploads are the message's (a failure leaves them to the sweep, logged); else free again.
    await (result.frame && !result.duplicate ? claimed.attach(result.frame.id) : claimed.release()).catch(error => logger.error('[nuxt-chat] could not record a message\'s attachments', error))
    return result
  }

  async function storeChecked(input: SendInput, text: string, mentioned: FoundMentions | undefined, files: ChatFile[] | undefined): Promise<SendResult> {
    const fail = (status: number, code: ChatErrorFrame['code'], message: string): SendResult => ({ status, error: errorFrame(code, message, input.cid) })
    const { action } = input
    let result
    try {
      const appending = stores.append({ room: input.room, user: input.user.name, sender: input.sender, guest: input.user.guest, message: text, ts: Date.now(), cid: input.cid, kind: action?.kind, target: action?.target, replyTo: action ? undefined : input.replyTo, thread: action ? undefined : input.thread, alsoInRoom: action ? undefined : input.alsoInRoom, files, mentions: mentioned?.uids.length ? mentioned.uids : undefined, mentionsAll: mentioned?.all })
      input.onQueued?.()
      // The store applies an event to its target in the same transaction as it stores it.
      result = await appending
    }
    catch (error) {
      // A value the store cannot hold is the sender's to fix: a retry would fail the same way.
      if (error instanceof RoomLogInputError) return fail(400, 'bad_request', error.message)
      // The store's own check, made with the change: its target went meanwhile, or a reaction bound is reached.
      if (error instanceof RoomLogRefusal) return error.code === 'not_found' ? fail(404, 'not_found', error.message) : fail(403, 'rejected', error.message)
      logger.error('[nuxt-chat] could not store a message', error)
      return fail(503, 'unavailable', 'The message could not be stored; try again')
    }
    const frame = messageFrame(result.message)
    if (result.duplicate) return { status: 200, frame, duplicate: true }

    // Retention runs on its own timer (see retention.ts), never on the send path.
    onStored(frame, JSON.stringify(frame))
    if (mentioned && (mentioned.uids.length || mentioned.all)) onMentioned?.(frame as ChatMessageFrame, mentioned)
    return { status: 200, frame }
  }

  return send
}
