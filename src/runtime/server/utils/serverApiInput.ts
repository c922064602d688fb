/**
 * The checks of the server API's arguments (`useChatServer()`, docs/PROTOCOL.md, "Messages from
 * the server side"): server code passes what its callers gave it (a route's body, a job's row),
 * so every argument is checked before anything is read or stored. Each check answers why the
 * argument cannot be used, naming it, or undefined.
 */
import { isIdInRange, isStorableText, isValidCid, isValidRoom, MAX_ID, type ChatUser } from '../../shared/protocol'
import { normalizeName } from './names'
import { MAX_MEMBER_ID, MEMBER_ROLES, memberIdProblem } from './roomMembers'

/** Longest name server code gives a message's author (a bot's, a person's as the app knows it), before it is cleaned to a display name's 32 characters. */
export const MAX_SERVER_USER_NAME = 200
/** Most rooms one server-side search names. */
export const MAX_SEARCH_ROOMS = 1000

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const hasControl = (text: string) => [...text].some(char => char.charCodeAt(0) < 32 || char.charCodeAt(0) === 127)

/** An options argument: absent, or an object. */
export function optionsProblem(value: unknown, name = 'options'): string | undefined {
  return value === undefined || isObject(value) ? undefined : `\`${name}\` must be an object`
}

/** A room name. */
export function roomProblem(value: unknown, name = 'room'): string | undefined {
  return isValidRoom(value) ? undefined : `\`${name}\` must be 1-64 characters of [A-Za-z0-9._:-]`
}

/** Any person's id, a guest's included (`disconnect`, `unread`, a search's `user`). */
export function userIdProblem(value: unknown, name = 'userId'): string | undefined {
  if (typeof value !== 'string' || !value || value.length > MAX_MEMBER_ID || hasControl(value)) return `\`${name}\` must be a user id: 1-${MAX_MEMBER_ID} characters without control characters`
  return undefined
}

/** Who server code writes as (`send`, `edit`, `delete`, `stream`, an AI member): a signed-in user's or a bot's id (or `server`), never a guest's. */
export function authorProblem(value: unknown, name = 'user'): string | undefined {
  const wrong = (detail: string) => `\`${name}\` must be { id, name }: ${detail}`
  if (!isObject(value)) return wrong('an object')
  if (memberIdProblem(value.id)) return wrong(`its id 1-${MAX_MEMBER_ID} characters without control characters, not a guest's (starting with \`guest:\`)`)
  if (typeof value.name !== 'string' || !value.name || !isStorableText(value.name, MAX_SERVER_USER_NAME)) return wrong(`its name 1-${MAX_SERVER_USER_NAME} characters without NUL or lone surrogates`)
  if (normalizeName(value.name) === undefined) return wrong('its name has nothing visible once cleaned of control, format, bidi and invisible characters')
  if (value.guest !== undefined) return wrong('no `guest`: server code does not write as a guest')
  return undefined
}

/**
 * Server code's author (`authorProblem` passed) with its name as shown: cleaned as a client's display
 * name is (names.ts), since server code often passes on what a person typed.
 */
export function shownAuthor<T extends ChatUser>(user: T): T {
  return { ...user, name: normalizeName(user.name)! }
}

/** Whom server code searches as: anyone, a guest included (`{ id, name, guest? }`). */
export function searcherProblem(value: unknown, name = 'user'): string | undefined {
  const wrong = (detail: string) => `\`${name}\` must be { id, name, guest? }: ${detail}`
  if (!isObject(value)) return wrong('an object')
  if (userIdProblem(value.id)) return wrong(`its id 1-${MAX_MEMBER_ID} characters without control characters`)
  if (typeof value.name !== 'string') return wrong('its name a string')
  if (value.guest !== undefined && value.guest !== true) return wrong('`guest` true or absent')
  if ((value.guest === true) !== (value.id as string).startsWith('guest:')) return wrong('a guest\'s id starts with `guest:`, and only a guest\'s')
  return undefined
}

/** A message id (`min` 1), or a position or cursor (`min` 0); `optional`: may be absent. */
export function idProblem(value: unknown, name: string, { min = 1, optional = true }: { min?: number, optional?: boolean } = {}): string | undefined {
  if (value === undefined && optional) return undefined
  return isIdInRange(value, min) ? undefined : `\`${name}\` must be an integer from ${min} to ${MAX_ID}`
}

/** A page size: absent, or an integer of at least 1 (a larger one than a call serves is cut to its maximum). */
export function limitProblem(value: unknown, name = 'limit'): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 ? undefined : `\`${name}\` must be an integer of at least 1`
}

/** A page's `after`: absent, or a string of at most `max` characters. */
export function afterProblem(value: unknown, max: number, name = 'after'): string | undefined {
  return value === undefined || (typeof value === 'string' && value.length <= max) ? undefined : `\`${name}\` must be a string of at most ${max} characters`
}

/** A member's role. */
export function roleProblem(value: unknown, name = 'role'): string | undefined {
  return typeof value === 'string' && (MEMBER_ROLES as readonly string[]).includes(value) ? undefined : `\`${name}\` must be ${MEMBER_ROLES.join(', ')}`
}

/** A mute's end: absent (indefinitely), or epoch milliseconds (0 or past: unmute). */
export function untilProblem(value: unknown, name = 'until'): string | undefined {
  return value === undefined || isIdInRange(value, 0) ? undefined : `\`${name}\` must be a time in epoch milliseconds (0 to ${MAX_ID})`
}

/** A message's text. */
export function textProblem(value: unknown, name = 'message'): string | undefined {
  return typeof value === 'string' ? undefined : `\`${name}\` must be a string`
}

/** What `send`, `edit` and `delete` take besides the text: `user`, `cid`, `replyTo`, `thread`, `alsoInRoom`, `files`. */
export function sendOptionsProblem(options: unknown): string | undefined {
  const problem = optionsProblem(options)
  if (problem || options === undefined) return problem
  const { user, cid, replyTo, thread, alsoInRoom, files } = options as Record<string, unknown>
  if (user !== undefined) {
    const userProblem = authorProblem(user)
    if (userProblem) return userProblem
  }
  if (cid !== undefined && !isValidCid(cid)) return '`cid` must be 1-64 characters from [A-Za-z0-9._:-]'
  const idsProblem = idProblem(replyTo, 'replyTo') ?? idProblem(thread, 'thread')
  if (idsProblem) return idsProblem
  if (alsoInRoom !== undefined && typeof alsoInRoom !== 'boolean') return '`alsoInRoom` must be a boolean'
  if (files !== undefined && (!Array.isArray(files) || !files.every(file => isObject(file) && typeof file.name === 'string' && file.data instanceof Uint8Array))) return '`files` must be a list of { name, data } (`data` a Uint8Array)'
  return undefined
}

/** The rooms a server-side search reads: a list of room names. */
export function searchRoomsProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length > MAX_SEARCH_ROOMS || !value.every(room => isValidRoom(room))) return `\`rooms\` must be a list of at most ${MAX_SEARCH_ROOMS} room names`
  return undefined
}
