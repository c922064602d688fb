import type { Hookable } from 'hookable'
import { errorFrame, isTimeInRange, timeProblem, type ChatErrorFrame, type ChatMemberCommand, type ChatMemberFrame, type ChatUser } from '../../shared/protocol'
import type { ChatMemberActionContext, ChatRoomActionContext, ChatRuntimeHooks } from '../../types'
import { isMembership, isMuted, memberIdProblem, mayAct, MUTED_FOREVER, type MemberRole, type RoomDirectory, type RoomMember } from './roomMembers'

/** What a moderation command (or the server API's equivalent) comes to: the membership as it now is, or the refusal. */
export type ModerationResult = { frame: ChatMemberFrame } | ModerationFailure
/** A refused change: the HTTP status and the `error` frame. */
export interface ModerationFailure { status: number, error: ChatErrorFrame }

export interface RoomModerationOptions {
  store: RoomDirectory
  hooks: Hookable<ChatRuntimeHooks>
  logger: { error: (message: string, error?: unknown) => void }
  /** A membership changed (stored): tell every instance (caches, connections, rooms lists). */
  changed: (frame: ChatMemberFrame) => void
  /** A new membership was stored (not a ban): the room joins the person's rooms lists. */
  added?: (room: string, uid: string) => void
  now?: () => number
}

/** Who the app's server code acts as in the `chat:action` hook. */
export const SERVER_ACTOR: ChatUser = Object.freeze({ id: 'server', name: 'server' })

/**
 * Ask the app's `chat:action` hook about a moderation command or a record change: undefined when
 * it may go on, else the refusal (`forbidden` with the hook's reason; `unavailable` when the hook failed).
 */
export async function actionRefusal(hooks: Pick<Hookable<ChatRuntimeHooks>, 'callHook'>, context: ChatMemberActionContext | ChatRoomActionContext, logger: { error: (message: string, error?: unknown) => void }, refused: string): Promise<ModerationFailure | undefined> {
  try {
    await hooks.callHook('chat:action', context)
  }
  catch (error) {
    const { statusCode, statusMessage } = error as { statusCode?: number, statusMessage?: string }
    if (!statusCode) {
      logger.error('[nuxt-chat] the chat:action hook failed', error)
      return { status: 503, error: errorFrame('unavailable', 'The change could not be checked; try again') }
    }
    context.reject = statusMessage || 'Not allowed'
  }
  if (context.reject !== undefined) return { status: 403, error: errorFrame('forbidden', String(context.reject)) }
  if (!context.allow) return { status: 403, error: errorFrame('forbidden', refused) }
  return undefined
}

/** The `member` frame of a membership (or of none: a mute-only row shows its mute, no role). */
export function memberFrame(room: string, uid: string, member: RoomMember | undefined, removed = false): ChatMemberFrame {
  const frame: ChatMemberFrame = { type: 'member', room, uid }
  if (member) {
    if (!member.muteOnly) frame.role = member.role
    if (member.mutedUntil !== undefined) frame.mutedUntil = member.mutedUntil
    if (member.banned) frame.banned = true
  }
  if (removed || member?.banned) frame.removed = true
  return frame
}

/**
 * Moderation (docs/PROTOCOL.md, "Moderation commands"): the role rules, then the `chat:action`
 * hook, then the store, then `changed`. `actor` undefined: the app's server code (trusted: the
 * rules do not apply, the hook still runs with `allow: true`).
 */
export function createRoomModeration({ store, hooks, logger, changed, added = () => {}, now = Date.now }: RoomModerationOptions) {
  const fail = (status: number, code: ChatErrorFrame['code'], message: string): ModerationResult => ({ status, error: errorFrame(code, message) })

  /** A room acted in without a record becomes a public one made by nobody, so its members and bans count (admission reads members of recorded rooms only). */
  async function ensureRecord(room: string) {
    if (await store.roomRecord(room)) return
    // Never under `dm:` (`act` refuses those rooms): the pair's `dm` would open the public room made there.
    if (room.startsWith('dm:')) throw new Error(`[nuxt-chat] no public record is made under a direct room's id ("${room}")`)
    await store.createRoom({ id: room, title: room, topic: '', visibility: 'public', kind: 'room', createdBy: null, createdAt: now() })
  }

  async function act(room: string, command: ChatMemberCommand, actor?: ChatUser): Promise<ModerationResult> {
    const subjectId = command.user
    const problem = memberIdProblem(subjectId)
    if (problem) return fail(400, 'bad_request', problem)
    // Server code's `mute` comes here unparsed: a time no `Date` holds would be stored and sent back.
    if (command.type === 'mute' && command.until !== undefined && !isTimeInRange(command.until)) return fail(400, 'bad_request', timeProblem('until'))
    if (actor?.guest) return fail(403, 'forbidden', 'Guests cannot moderate')
    // A direct room has its two members, no more, no fewer: server code moderates it no more than members do.
    if (room.startsWith('dm:')) return fail(403, 'forbidden', 'Nobody moderates a direct room')
    let actorMember: RoomMember | undefined
    let subject: RoomMember | undefined
    try {
      actorMember = actor ? await store.member(room, actor.id) : undefined
      subject = await store.member(room, subjectId)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not read a room\'s members', error)
      return fail(503, 'unavailable', 'The room could not be read; try again')
    }
    const role = command.type === 'role' ? command.role : undefined
    const until = command.type === 'mute' ? command.until ?? MUTED_FOREVER : undefined
    // Anyone may end their own membership (leave the room for good): `remove` of oneself.
    const leaving = command.type === 'remove' && actor?.id === subjectId
    const context: ChatMemberActionContext = { room, user: actor ?? SERVER_ACTOR, action: command.type, subject: subjectId, allow: !actor || leaving || mayAct(command.type, actorMember, subject, role) }
    if (role) context.role = role
    if (until !== undefined) context.until = until
    const refusal = await actionRefusal(hooks, context, logger, `You may not ${command.type} this person in this room`)
    if (refusal) return refusal
    try {
      return await apply(room, command, subjectId, subject, role, until)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not store a membership', error)
      return fail(503, 'unavailable', 'The change could not be stored; try again')
    }
  }

  async function apply(room: string, command: ChatMemberCommand, uid: string, subject: RoomMember | undefined, role: MemberRole | undefined, until: number | undefined): Promise<ModerationResult> {
    const at = now()
    const fresh = (): RoomMember => ({ room, uid, role: 'member', joinedAt: at })
    let next: RoomMember | undefined
    let removed = false
    switch (command.type) {
      case 'invite':
        // Already in: nothing changes (a banned person is let back only by `unban` first, or by server code).
        if (isMembership(subject)) return { frame: memberFrame(room, uid, subject) }
        next = fresh()
        // A mute-only row's mute stays: an invite does not lift it.
        if (subject?.muteOnly && isMuted(subject, at)) next.mutedUntil = subject.mutedUntil
        break
      case 'remove':
        if (!subject || !isMembership(subject)) return fail(404, 'not_found', 'No such member in this room')
        removed = true
        // A mute outlasts the membership: the row stays as a mute-only row until it ends (a ban's does for good).
        if (isMuted(subject, at)) next = { room, uid, role: 'member', joinedAt: subject.joinedAt, mutedUntil: subject.mutedUntil, muteOnly: true }
        break
      case 'mute':
        if (subject?.banned) return fail(404, 'not_found', 'No such member in this room')
        // Unmuting someone who is not a member makes nothing; their mute is a mute-only row, never a membership (else it would be an invite the app's rules for `invite` never see).
        if (!isMembership(subject) && until! <= at) {
          if (!subject) return fail(404, 'not_found', 'No such member in this room')
          break
        }
        next = { ...subject ?? { ...fresh(), muteOnly: true } }
        if (until! > at) next.mutedUntil = until
        else delete next.mutedUntil
        break
      case 'ban':
        next = { ...subject ?? fresh(), banned: true }
        delete next.mutedUntil
        delete next.muteOnly
        break
      case 'unban':
        if (!subject?.banned) return fail(404, 'not_found', 'This person is not banned here')
        break
      case 'role':
        if (!subject || !isMembership(subject)) return fail(404, 'not_found', 'No such member in this room')
        next = { ...subject, role: role! }
        break
    }
    // A row that stays needs a record to count; a row deleted needs none (leaving a room without one).
    if (next) {
      await ensureRecord(room)
      await store.saveMember(next)
    }
    else {
      await store.deleteMember(room, uid)
    }
    const frame = memberFrame(room, uid, next, removed)
    changed(frame)
    if (isMembership(next) && !isMembership(subject)) added(room, uid)
    return { frame }
  }

  return {
    /** Run one moderation command in `room` as `actor` (absent: the app's server code). */
    act,
    /** Make a membership directly (server code creating rooms and direct rooms): no hook, no rules. */
    async add(member: RoomMember): Promise<boolean> {
      const stored = await store.addMemberIfAbsent(member)
      if (stored) {
        // A mute-only row it replaced left its mute: the frame tells it as stored.
        changed(memberFrame(member.room, member.uid, await store.member(member.room, member.uid) ?? member))
        added(member.room, member.uid)
      }
      return stored
    },
    /** End a membership outside the commands (server code's `forget`): a ban stays, and a mute until it ends. */
    end: (room: string, uid: string): Promise<boolean> => store.endMembership(room, uid, now()),
  }
}

export type RoomModeration = ReturnType<typeof createRoomModeration>
