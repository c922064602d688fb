import type { ChatMentionAll } from '../../shared/protocol'
import { MAX_MENTIONS } from './roomLog'
import type { RoomDirectory } from './roomMembers'

/** `@name` in messages (docs/PROTOCOL.md, "Mentions"): parsing against a room's names, and a bounded per-room index of them. */

/** A room's members' names, ready for `findMentions`. */
export interface NameIndex {
  /** Lower-cased name → the members holding it. */
  byName: Map<string, string[]>
  /** The lengths (UTF-16 code units, as written) of the names, longest first: the windows tried after an `@`. */
  lengths: number[]
  /** Every member in the index (`@room`, and which rooms a name change concerns). */
  uids: Set<string>
}

/** What a message's text mentions. */
export interface FoundMentions {
  /** Members named, in order of first mention, at most `MAX_MENTIONS`. */
  uids: string[]
  /** `@room` / `@here`, when the sender may use them. */
  all?: ChatMentionAll
}

/** Build the index of a room's members' names. */
export function createNameIndex(members: Iterable<{ uid: string, name: string }>): NameIndex {
  const byName = new Map<string, string[]>()
  const lengths = new Set<number>()
  const uids = new Set<string>()
  for (const { uid, name } of members) {
    // A member whose name is not known yet is held (a name change finds the room) but cannot be named.
    uids.add(uid)
    if (!name) continue
    const key = name.toLowerCase()
    const holders = byName.get(key)
    if (holders) holders.push(uid)
    else byName.set(key, [uid])
    lengths.add(name.length)
  }
  return { byName, lengths: [...lengths].sort((a, b) => b - a), uids }
}

// Before an `@`: a character of an e-mail address's local part (or another `@`) makes it no mention.
const WORD_BEFORE = /[\p{L}\p{N}\p{M}_.+\-@]/u
// After a name: a letter or digit would make it part of a longer word.
const WORD_AFTER = /[\p{L}\p{N}\p{M}_]/u
/** `@` signs looked at per message: text is bounded, this bounds the work on a text of nothing but `@`s. */
const MAX_AT_SIGNS = 200

/** Does a name ending at `end` end a word there (end of text, or a character that is no letter, digit or `_`)? */
function endsWord(text: string, end: number): boolean {
  if (end >= text.length) return true
  return !WORD_AFTER.test(String.fromCodePoint(text.codePointAt(end)!))
}

/** The code point ending just before `index`, as a string ('' at the start). */
function charBefore(text: string, index: number): string {
  if (index === 0) return ''
  const low = text.charCodeAt(index - 1)
  return index >= 2 && low >= 0xDC00 && low <= 0xDFFF ? text.slice(index - 2, index) : text[index - 1]!
}

/**
 * The members `text` mentions: each `@` at the start or after a character that is not a letter,
 * digit, `_`, `.`, `+`, `-` or `@`, followed by the longest name of the index (case-insensitive)
 * that ends a word. `@room` / `@here` come first: with `mayMentionAll` they are `all`, else plain
 * text. `sender` is never among the members found.
 */
export function findMentions(text: string, index: NameIndex, sender: string, mayMentionAll: boolean): FoundMentions {
  const found: FoundMentions = { uids: [] }
  const seen = new Set<string>()
  let at = text.indexOf('@')
  for (let signs = 0; at !== -1 && signs < MAX_AT_SIGNS && seen.size < MAX_MENTIONS; signs++, at = text.indexOf('@', at + 1)) {
    if (WORD_BEFORE.test(charBefore(text, at))) continue
    const start = at + 1
    const keyword = text.slice(start, start + 4).toLowerCase()
    if ((keyword === 'room' || keyword === 'here') && endsWord(text, start + 4)) {
      if (mayMentionAll && found.all !== 'room') found.all = keyword
      continue
    }
    for (const length of index.lengths) {
      if (start + length > text.length) continue
      const holders = index.byName.get(text.slice(start, start + length).toLowerCase())
      if (!holders || !endsWord(text, start + length)) continue
      for (const uid of holders) {
        if (uid === sender || seen.has(uid) || seen.size >= MAX_MENTIONS) continue
        seen.add(uid)
        found.uids.push(uid)
      }
      break
    }
  }
  return found
}

export interface MentionResolverOptions {
  store: Pick<RoomDirectory, 'memberNames'>
  /** Rooms whose index is kept at most (least recently used out); `maxNames` bounds the memory. @default 10000 */
  maxRooms?: number
  /** Names one room's index holds at most (members past it cannot be mentioned by name). @default 20000 */
  maxNamesPerRoom?: number
  /** Names all indexes hold at most together. @default 200000 */
  maxNames?: number
  /** How long an index is used before it is read again (names changed on another instance). @default 60000 */
  ttl?: number
  now?: () => number
}

interface KeptIndex {
  index: NameIndex
  at: number
}

/**
 * A per-room index of members' names, so resolving a message's `@name`s costs map lookups, not a
 * query: read once per room (at most `ttl` old), dropped on membership and name changes, bounded.
 */
export function createMentionResolver({ store, maxRooms = 10_000, maxNamesPerRoom = 20_000, maxNames = 200_000, ttl = 60_000, now = Date.now }: MentionResolverOptions) {
  /** room → its index, least recently used first. */
  const kept = new Map<string, KeptIndex>()
  /** Reads in flight, so a burst of messages to a new room reads it once. */
  const reading = new Map<string, Promise<NameIndex>>()
  let names = 0

  const drop = (room: string) => {
    const entry = kept.get(room)
    if (!entry) return
    kept.delete(room)
    names -= entry.index.uids.size
  }

  const keep = (room: string, index: NameIndex) => {
    drop(room)
    kept.set(room, { index, at: now() })
    names += index.uids.size
    while ((kept.size > maxRooms || names > maxNames) && kept.size > 1) drop(kept.keys().next().value!)
  }

  /** The room's index: at once when kept and fresh, else a promise of it read from the store. */
  function indexOf(room: string): NameIndex | Promise<NameIndex> {
    const entry = kept.get(room)
    if (entry && now() - entry.at < ttl) {
      // Used just now: the last one out.
      kept.delete(room)
      kept.set(room, entry)
      return entry.index
    }
    let read = reading.get(room)
    if (!read) {
      read = store.memberNames(room, maxNamesPerRoom).then(createNameIndex)
      reading.set(room, read)
      const generation = read
      read.then(index => reading.get(room) === generation && keep(room, index), () => {}).finally(() => reading.get(room) === generation && reading.delete(room))
    }
    return read
  }

  return {
    indexOf,
    /** What `text` mentions in `room`: at once when the room's index is kept (no `@` costs nothing), else a promise. */
    resolve(room: string, text: string, sender: string, mayMentionAll: boolean): FoundMentions | Promise<FoundMentions> {
      if (!text.includes('@')) return { uids: [] }
      const index = indexOf(room)
      return index instanceof Promise ? index.then(read => findMentions(text, read, sender, mayMentionAll)) : findMentions(text, index, sender, mayMentionAll)
    },
    /** A membership of the room changed (here or on another instance): read its names again when next needed. */
    forgetRoom(room: string) {
      drop(room)
      reading.delete(room)
    },
    /**
     * A member's name was stored: the rooms whose index holds them under another name read it again.
     * Unchanged names (every user's first join on a new instance) cost nothing: a reconnect storm
     * must not make a big room read its 10,000 names again per message.
     */
    nameChanged(uid: string, name: string) {
      const key = name.toLowerCase()
      for (const [room, entry] of [...kept]) {
        if (entry.index.uids.has(uid) && !entry.index.byName.get(key)?.includes(uid)) drop(room)
      }
    },
    /** Rooms kept and names held (for tests and metrics). */
    size: () => ({ rooms: kept.size, names }),
  }
}
