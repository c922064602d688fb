/**
 * Search as a person (docs/PROTOCOL.md, "Search"): the rooms they may read, within their limits,
 * then the store's own search. Every transport (command, HTTP route) and `useChatServer().search`
 * comes through here.
 */
import { errorFrame, type ChatErrorFrame, type ChatUser } from '../../shared/protocol'
import { excerptOf, searchWords, SEARCH_WORDS_MAX, type ChatSearchRequest, type ChatSearchResultsFrame } from '../../shared/search'
import { limitRefusalFrame, type ChatLimits, type LimitSubject } from './chatLimits'
import type { ListAdmission } from './listAdmission'
import { MAX_LISTED_ROOMS } from './readState'
import type { RoomAccess } from './roomAccess'
import { NOT_ALLOWED } from './roomAccess'
import { RoomLogInputError, type RoomLog } from './roomLog'

/** Who asks: the limits' subject and what `chat:identify` kept for `chat:join` (absent: server code, unlimited, unchecked). */
export interface SearchAsker {
  subject: LimitSubject
  data?: Record<string, unknown>
}

/** Who searches: a person (the rooms they may read), or server code naming its rooms (no check). */
export type SearchWho = ChatUser | { rooms: string[] }

/** A search answered: the frame and its JSON (what is sent and charged), or the refusal with its HTTP status. */
export type SearchAnswer = { frame: ChatSearchResultsFrame, text: string } | { status: number, error: ChatErrorFrame }

export interface RoomSearchOptions {
  store: Pick<RoomLog, 'search' | 'memberRooms'>
  access: Pick<RoomAccess, 'decide'>
  listAdmission: ListAdmission
  limits: ChatLimits
  logger: { error: (message: string, error?: unknown) => void }
}

// The words as typed (PostgreSQL folds them its own way), as `searchWords` picks them.
const WORD = /[\p{L}\p{N}]+/gu

/** The hub's search: `search(request, user, asker?)`. */
export function createRoomSearch({ store, access, listAdmission, limits, logger }: RoomSearchOptions) {
  /** May `user` read `room`: the room's admission, then (a person asking) the app's `chat:join`, cached as rooms lists cache it. */
  async function mayRead(room: string, user: ChatUser, asker: SearchAsker | undefined): Promise<boolean> {
    const decision = await access.decide(room, user, 'read')
    if (!decision.allowed) return false
    return !asker || listAdmission.admitted({ user, ...(asker.data && { data: asker.data }), write() {} }, room)
  }

  /** The rooms `who` searches: server code's own, or a person's: the one named, or their rooms list's, each one they may read. */
  async function roomsOf(request: ChatSearchRequest, who: SearchWho, asker: SearchAsker | undefined): Promise<string[] | { status: number, error: ChatErrorFrame }> {
    if ('rooms' in who) return request.room === undefined ? who.rooms : who.rooms.filter(room => room === request.room)
    const user = who
    if (request.room !== undefined) {
      return await mayRead(request.room, user, asker) ? [request.room] : { status: 403, error: errorFrame('forbidden', NOT_ALLOWED) }
    }
    if (user.guest) return { status: 401, error: errorFrame('unauthorized', 'Sign in to search your rooms; a guest searches one public room it names (`room`)') }
    const listed = await store.memberRooms(user.id, MAX_LISTED_ROOMS)
    const readable = await Promise.all(listed.map(room => mayRead(room, user, asker)))
    return listed.filter((_room, index) => readable[index])
  }

  return async function search(request: ChatSearchRequest, who: SearchWho, asker?: SearchAsker): Promise<SearchAnswer> {
    const refused = asker && limits.take('history', asker.subject)
    if (refused) return { status: 429, error: limitRefusalFrame(refused) }
    try {
      const rooms = await roomsOf(request, who, asker)
      if ('error' in rooms) return rooms
      const words = searchWords(request.q)
      const text = (request.q.match(WORD) ?? []).slice(0, SEARCH_WORDS_MAX).join(' ')
      const page = await store.search({ words, text, rooms, limit: request.limit, author: request.author, before: request.before, after: request.after, cursor: request.cursor })
      const frame: ChatSearchResultsFrame = {
        type: 'search_results',
        q: request.q,
        hits: page.messages.map(message => ({
          room: message.room,
          id: message.id,
          user: message.user,
          ...(message.uid === undefined ? {} : { uid: message.uid }),
          ts: message.ts,
          ...excerptOf(message.message, words),
        })),
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      }
      const json = JSON.stringify(frame)
      if (asker) limits.chargeHistoryBytes(asker.subject, Buffer.byteLength(json))
      return { frame, text: json }
    }
    catch (error) {
      if (error instanceof RoomLogInputError) return { status: 400, error: errorFrame('bad_request', error.message) }
      logger.error('[nuxt-chat] a search failed', error)
      return { status: 503, error: errorFrame('unavailable', 'Search is unavailable right now; try again') }
    }
  }
}

export type RoomSearch = ReturnType<typeof createRoomSearch>
