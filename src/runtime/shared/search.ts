/**
 * Search (docs/PROTOCOL.md, "Search"): the request, its words and the result shape, shared by the
 * server (command, HTTP route, `useChatServer().search`) and the client. Pure functions only.
 */
import { isTimeInRange, isValidRoom, timeProblem } from './protocol'

/** Longest query text (UTF-16 code units). */
export const SEARCH_QUERY_MAX = 200
/** Words of a query at most. */
export const SEARCH_WORDS_MAX = 8
/** Longest word (longer ones cannot be in a message's index anyway). */
export const SEARCH_WORD_MAX = 64
/** Hits of one page at most, and when not asked. */
export const SEARCH_PAGE_MAX = 50
export const SEARCH_PAGE_DEFAULT = 20
/** Longest excerpt of a hit. */
export const SEARCH_EXCERPT_MAX = 200
/** Longest cursor a client may hand back. */
const SEARCH_CURSOR_MAX = 200

/** What a person asks: words, and optional filters. */
export interface ChatSearchRequest {
  /** The words: a message matches when it holds every one of them. */
  q: string
  /** Only this room. */
  room?: string
  /** Only messages from this user id (`uid`). */
  author?: string
  /** Only messages sent before this time (epoch ms, exclusive). */
  before?: number
  /** Only messages sent at or after this time (epoch ms). */
  after?: number
  /** The `cursor` of the previous page. */
  cursor?: string
  /** Hits per page, 1 to `SEARCH_PAGE_MAX`. */
  limit: number
}

/** One message found: where it is (open `room` at `id`), who sent it, and a plain-text excerpt. */
export interface ChatSearchHit {
  room: string
  id: number
  /** The sender's display name at the time of sending. */
  user: string
  uid?: string
  ts: number
  /** Up to `SEARCH_EXCERPT_MAX` characters of the message's current text, around the first word found: text, never HTML. */
  excerpt: string
  /** `[start, end)` offsets into `excerpt` of the words found, in order (render them as marks, as text). */
  highlights: [number, number][]
}

/** The answer to `search`: a page of hits, newest first, and the cursor of the next page (absent: no more). */
export interface ChatSearchResultsFrame {
  type: 'search_results'
  ref?: string
  q: string
  hits: ChatSearchHit[]
  cursor?: string
}

// Words are runs of letters and digits, as SQLite FTS5's unicode61 tokenizer and PostgreSQL's parser split text.
const WORD = /[\p{L}\p{N}]+/gu

/** A word as the index compares it: lower case, without diacritics. */
export function foldWord(word: string): string {
  return word.normalize('NFD').replace(/\p{M}+/gu, '').toLowerCase()
}

/** The words of a query, folded and de-duplicated, in order (at most `SEARCH_WORDS_MAX`: the rest is ignored). */
export function searchWords(text: string): string[] {
  const words: string[] = []
  for (const [word] of text.matchAll(WORD)) {
    const folded = foldWord(word).slice(0, SEARCH_WORD_MAX)
    if (folded && !words.includes(folded)) words.push(folded)
    if (words.length >= SEARCH_WORDS_MAX) break
  }
  return words
}

/**
 * An FTS5 MATCH expression for the words: each one a quoted string (a `"` inside doubled), joined
 * by spaces (all of them must match). Nothing of the user's text is read as FTS5 syntax.
 */
export function fts5Match(words: readonly string[]): string {
  return words.map(word => `"${word.replaceAll('"', '""')}"`).join(' ')
}

/** Does `text` hold every one of `words` (as whole words, folded)? The memory store's match. */
export function holdsWords(text: string, words: readonly string[]): boolean {
  if (!words.length) return false
  const found = new Set<string>()
  for (const [word] of text.matchAll(WORD)) found.add(foldWord(word))
  return words.every(word => found.has(word))
}

/**
 * Up to `SEARCH_EXCERPT_MAX` characters of `text` around the first of `words` in it, with the
 * offsets of the words found in the excerpt; `…` marks text cut off.
 */
export function excerptOf(text: string, words: readonly string[]): { excerpt: string, highlights: [number, number][] } {
  const hits: [number, number][] = []
  for (const match of text.matchAll(WORD)) {
    if (words.includes(foldWord(match[0]))) hits.push([match.index, match.index + match[0].length])
  }
  const first = hits[0]?.[0] ?? 0
  // Some context before the first word, starting at a space when there is one near.
  let start = Math.max(0, first - 60)
  const space = text.indexOf(' ', start)
  if (start > 0 && space !== -1 && space < first) start = space + 1
  const lead = start > 0 ? '…' : ''
  const room = SEARCH_EXCERPT_MAX - lead.length
  const end = Math.min(text.length, start + room)
  const tail = end < text.length ? '…' : ''
  const body = text.slice(start, tail ? end - 1 : end)
  const shift = lead.length - start
  const highlights = hits
    .filter(([from, to]) => from >= start && to <= start + body.length)
    .map(([from, to]): [number, number] => [from + shift, to + shift])
  return { excerpt: lead + body + tail, highlights }
}

const number = (value: unknown) => typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value

/**
 * Read a search request from a command's fields or query parameters: `q` (1 to `SEARCH_QUERY_MAX`
 * characters with at least one word), `room?`, `author?`, `before?` / `after?` (epoch ms),
 * `cursor?`, `limit?` (1 to `SEARCH_PAGE_MAX`). A string saying why, if not.
 */
export function parseSearchRequest(fields: Record<string, unknown>): ChatSearchRequest | string {
  const { q, room, author, cursor } = fields
  if (typeof q !== 'string' || q.length > SEARCH_QUERY_MAX) return `\`q\` must be text of at most ${SEARCH_QUERY_MAX} characters`
  if (!searchWords(q).length) return '`q` must hold at least one word (letters or digits)'
  if (room !== undefined && !isValidRoom(room)) return '`room` must be 1-64 characters from [A-Za-z0-9._:-]'
  if (author !== undefined && (typeof author !== 'string' || !author || author.length > 256)) return '`author` must be a user id (1-256 characters)'
  if (cursor !== undefined && (typeof cursor !== 'string' || !cursor || cursor.length > SEARCH_CURSOR_MAX || !isValidCursorText(cursor))) return '`cursor` must be the `cursor` of a previous page'
  const before = number(fields.before)
  const after = number(fields.after)
  if (before !== undefined && !isTimeInRange(before)) return timeProblem('before')
  if (after !== undefined && !isTimeInRange(after)) return timeProblem('after')
  const limit = fields.limit === undefined ? SEARCH_PAGE_DEFAULT : number(fields.limit)
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > SEARCH_PAGE_MAX) return `\`limit\` must be an integer from 1 to ${SEARCH_PAGE_MAX}`
  return {
    q,
    limit: limit as number,
    ...(room !== undefined ? { room: room as string } : {}),
    ...(author !== undefined ? { author: author as string } : {}),
    ...(before !== undefined ? { before: before as number } : {}),
    ...(after !== undefined ? { after: after as number } : {}),
    ...(cursor !== undefined ? { cursor: cursor as string } : {}),
  }
}

/** Cursors are base64url (the stores make them so): anything else is refused before a store sees it. */
function isValidCursorText(cursor: string): boolean {
  return /^[\w-]+$/.test(cursor)
}
