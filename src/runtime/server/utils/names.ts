/** Display names: normalized on the server, and checked so that a guest cannot pass for someone else. */
import unhomoglyph from 'unhomoglyph'

/** Longest display name, in code points. */
export const NAME_MAX = 32
/** Names no guest may take (compared by confusable skeleton, ignoring case), besides the app's `reservedNames`. */
export const BUILTIN_RESERVED_NAMES = ['server', 'system']

// Invisible or misleading: controls, format and bidi characters (incl. Unicode tags), default-ignorables
// (zero-width characters, Hangul fillers, U+115F…), private-use, unassigned code points and lone surrogates.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Default_Ignorable_Code_Point}]/gu
// Characters that draw as empty space without being white space: they count as white space.
const BLANK = /[\s\u2800\u{1D159}]+/gu
// A name needs at least one character a reader sees: a letter, digit, punctuation or symbol.
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u

/**
 * Normalize a display name: Unicode NFKC; controls, format, bidi and default-ignorable
 * characters removed; white space (and blank-looking characters) collapsed to one space and
 * trimmed; at most 32 code points. `undefined` when nothing visible is left.
 */
export function normalizeName(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined
  // Removed before and after NFKC: compatibility forms can decompose into default-ignorables.
  const clean = name.replace(INVISIBLE, '').normalize('NFKC').replace(INVISIBLE, '').replace(BLANK, ' ').trim()
  const capped = Array.from(clean).slice(0, NAME_MAX).join('').trim()
  return VISIBLE.test(capped) ? capped : undefined
}

/** The confusable skeleton of a text (Unicode TS #39): NFD, the confusables mapping, NFD. */
function skeleton(text: string): string {
  return unhomoglyph(text.normalize('NFD')).normalize('NFD')
}

/**
 * Can two names be mistaken for each other? Their skeletons are equal as written or once
 * lower-cased: `Аlice` (Cyrillic А), `AIice` (capital i), `alice` and `ALICE` all pass for `Alice`.
 */
export function areConfusable(a: string, b: string): boolean {
  return skeleton(a) === skeleton(b) || skeleton(a.toLowerCase()) === skeleton(b.toLowerCase())
}

/** What a guest's name wish became: the name to use, or why the wish was refused. */
export type GuestNameResult = { name: string } | { refused: string }

/**
 * Check a guest's name wish: normalized, not blank, not a reserved name, not confusable with
 * a signed-in user's name in the room (`signedInNames`).
 */
export function checkGuestName(wish: string, reservedNames: readonly string[], signedInNames: Iterable<string>): GuestNameResult {
  const name = normalizeName(wish)
  if (!name) return { refused: 'That name has nothing visible in it' }
  if ([...BUILTIN_RESERVED_NAMES, ...reservedNames].some(reserved => areConfusable(reserved, name))) return { refused: `The name "${name}" is reserved` }
  for (const taken of signedInNames) {
    if (areConfusable(taken, name)) return { refused: `The name "${name}" belongs to a signed-in user here` }
  }
  return { name }
}
