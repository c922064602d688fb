/** Display names: normalized on the server, and checked so that a guest cannot pass for someone else. */
import unhomoglyph from 'unhomoglyph'
import { LETTER_FORMS } from './letterForms'

/** Longest display name, in code points. */
export const NAME_MAX = 32
/** Names no guest may take (compared by confusable skeleton, ignoring case), besides the app's `reservedNames`. */
export const BUILTIN_RESERVED_NAMES = ['server', 'system']

// Invisible or misleading: controls, format and bidi characters (incl. Unicode tags), default-ignorables
// (zero-width characters, Hangul fillers, U+115F…), private-use, unassigned code points and lone surrogates.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Default_Ignorable_Code_Point}]/gu
// The invisible characters but ZWNJ, ZWJ, VS15 and VS16, which stay where they join something (JOINER_KEPT).
// eslint-disable-next-line no-misleading-character-class -- each joiner alone is what the class matches
const INVISIBLE_BUT_JOINERS = /(?![\u200C\u200D\uFE0E\uFE0F])[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Default_Ignorable_Code_Point}]/gu
// eslint-disable-next-line no-misleading-character-class -- each joiner alone is what the class matches
const JOINER = /[\u200C\u200D\uFE0E\uFE0F]/g
/**
 * Scripts whose words need ZWNJ / ZWJ between letters: cursive ones (a non-joiner breaks a join, as in
 * Persian) and Brahmic ones (after a virama they choose a conjunct's form). UAX #31 §2.3 and RFC 5892's
 * CONTEXTJ allow the joiners there only (by joining type and virama, which JS has no property for: by script).
 */
const JOINING_SCRIPTS = ['Arabic', 'Syriac', 'Nko', 'Mongolian', 'Mandaic', 'Adlam', 'Hanifi_Rohingya', 'Devanagari', 'Bengali', 'Gurmukhi', 'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala', 'Myanmar', 'Khmer']
/** Where a joiner joins something (tried at the joiner: sticky); anywhere else, first, last, doubled or next to ASCII, it goes. */
const JOINER_KEPT = new RegExp([
  // VS15 / VS16 right after a pictograph: its text or emoji presentation (❤️).
  String.raw`(?<=\p{Extended_Pictographic})[\uFE0E\uFE0F]`,
  // ZWJ between two pictographs, the first with its skin tone or VS16: an emoji ZWJ sequence (UTS #51: 👩‍💻, 🏳️‍🌈, 👨🏽‍🚀).
  String.raw`(?<=\p{Extended_Pictographic}[\p{Emoji_Modifier}\uFE0F]?)\u200D(?=\p{Extended_Pictographic})`,
  // ZWNJ / ZWJ between two letters or marks (a virama) of one such script (می‌خواهم, क्‍ष).
  ...JOINING_SCRIPTS.map(script => String.raw`(?<=[\p{L}\p{M}])(?<=\p{scx=${script}})[\u200C\u200D](?=[\p{L}\p{M}])(?=\p{scx=${script}})`),
].join('|'), 'uy')

/** `text` without its invisible characters, but the joiners and variation selectors that join something (docs/PROTOCOL.md, "Names and titles"). */
function removeInvisible(text: string): string {
  return text.replace(INVISIBLE_BUT_JOINERS, '').replace(JOINER, (joiner: string, at: number, whole: string) => {
    JOINER_KEPT.lastIndex = at
    return JOINER_KEPT.test(whole) ? joiner : ''
  })
}

// Characters that draw as empty space without being white space: they count as white space.
const BLANK = /[\s\u2800\u{1D159}]+/gu
// A name needs at least one character a reader sees: a letter, digit, punctuation or symbol.
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u

/**
 * Normalize a display name: Unicode NFKC; controls, format, bidi and default-ignorable
 * characters removed (but joiners that join something); white space (and blank-looking
 * characters) collapsed to one space and trimmed; at most 32 code points. `undefined` when
 * nothing visible is left.
 */
export function normalizeName(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined
  // Removed before and after NFKC: compatibility forms can decompose into default-ignorables (or join ASCII).
  const clean = removeInvisible(removeInvisible(name).normalize('NFKC')).replace(BLANK, ' ').trim()
  // Again once cut: a joiner can end up last.
  const capped = removeInvisible(Array.from(clean).slice(0, NAME_MAX).join('')).trim()
  return VISIBLE.test(capped) ? capped : undefined
}

// Tabs and line breaks: controls a title turns into spaces rather than losing the gap they make.
const BREAKS = /[\t\n\v\f\r\x85\u2028\u2029]/g
// A line break as a topic keeps it: CR LF, CR, NEL and the separators become one line feed.
const LINE_BREAK = /\r\n?|[\x85\u2028\u2029]/g

/**
 * Text shown as a name of something (a room's title or topic, a file's name; docs/PROTOCOL.md,
 * "Names and titles"): what a display name loses (controls, format and bidi characters,
 * default-ignorables but joiners that join something, private-use and unassigned code points)
 * removed, tabs and line breaks as spaces; with `lines`, line feeds kept. Nothing else changes
 * (no NFKC, no trimming).
 */
export function cleanShownText(text: string, { lines = false }: { lines?: boolean } = {}): string {
  const clean = (part: string) => removeInvisible(part.replace(BREAKS, ' '))
  return lines ? text.replace(LINE_BREAK, '\n').split('\n').map(clean).join('\n') : clean(text)
}

// Marks (combining, enclosing, stacked) and diacritics (incl. the strokes the confusables map turns into overlays):
// a reader sees `A̲lice`, `Aḷice` and `Ałice` as Alice.
const MARKS = /[\p{M}\p{Diacritic}]/gu
// Letters with strokes, bars, hooks or belts (`Aⱡice`, `Ꞩue`), small capitals (`Aʟice`) and modifier letters read
// as their base letters; Unicode does not decompose them and the confusables table maps only a few.
const LETTER_FORM = new RegExp(`[${Object.keys(LETTER_FORMS).join('')}]`, 'gu')
const baseLetterOf = (form: string) => LETTER_FORMS[form]!

/**
 * Look-alikes of several letters, or of letters TS #39 keeps apart, folded on a skeleton
 * (`rn`/`m` needs nothing: the confusables table already maps `m` to `rn`).
 */
const AMBIGUOUS_IN_NAMES: ReadonlyArray<readonly [RegExp, string]> = [
  // The skeleton maps `I`, `1`, `|` and `Ӏ` to `l` but `i` and `ӏ` (palochka) to `i`: in many fonts all are one stroke.
  [/i/g, 'l'],
  // `VVilliam` reads as William; TS #39 maps single letters only.
  [/vv/g, 'w'],
  [/VV/g, 'W'],
  // `cl` set tight reads as `d`.
  [/cl/g, 'd'],
]

/**
 * The confusable skeleton of a text (Unicode TS #39: NFD, the confusables mapping, NFD), on
 * compatibility forms (NFKD: fullwidth, mathematical letters) with invisible characters, marks
 * and diacritics removed before and after the mapping, letter forms (hooks, bars, small
 * capitals…) as their base letters, and letters ambiguous in names folded together.
 */
function skeleton(text: string): string {
  const bare = text.replace(INVISIBLE, '').normalize('NFKD').replace(MARKS, '').replace(LETTER_FORM, baseLetterOf)
  // A spacing accent (´) decomposes to a space and a mark: what is left of it is not a difference.
  const mapped = unhomoglyph(bare).normalize('NFKD').replace(MARKS, '').replace(LETTER_FORM, baseLetterOf).replace(/\s+/gu, ' ').trim()
  return AMBIGUOUS_IN_NAMES.reduce((folded, [look, reading]) => folded.replace(look, reading), mapped)
}

/** A name's skeletons as written and once lower-cased. */
function skeletonsOf(name: string): readonly [string, string] {
  return [skeleton(name), skeleton(name.toLowerCase())]
}

/**
 * Skeletons of the names a wish is compared with (signed-in users' names, which the app sets,
 * and reserved names): ~10 µs each to make, and a storm of guests compared them all per join.
 */
const takenSkeletons = new Map<string, readonly [string, string]>()
const MAX_TAKEN_SKELETONS = 10_000

function takenSkeletonsOf(name: string): readonly [string, string] {
  let pair = takenSkeletons.get(name)
  if (pair) return pair
  // Bounded: past the cap it starts afresh (names in use come back at once).
  if (takenSkeletons.size >= MAX_TAKEN_SKELETONS) takenSkeletons.clear()
  takenSkeletons.set(name, pair = skeletonsOf(name))
  return pair
}

const sameSkeletons = (a: readonly [string, string], b: readonly [string, string]) => a[0] === b[0] || a[1] === b[1]

/**
 * Can two names be mistaken for each other? Their skeletons are equal as written or once
 * lower-cased: `Аlice` (Cyrillic А), `AIice` (capital i), `alice` and `ALICE` all pass for `Alice`.
 */
export function areConfusable(a: string, b: string): boolean {
  return sameSkeletons(skeletonsOf(a), skeletonsOf(b))
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
  // The wish's skeletons once; the others' from the cache: a join costs one comparison per signed-in user, not four skeletons.
  const wished = skeletonsOf(name)
  if ([...BUILTIN_RESERVED_NAMES, ...reservedNames].some(reserved => sameSkeletons(takenSkeletonsOf(reserved), wished))) return { refused: `The name "${name}" is reserved` }
  for (const taken of signedInNames) {
    if (sameSkeletons(takenSkeletonsOf(taken), wished)) return { refused: `The name "${name}" belongs to a signed-in user here` }
  }
  return { name }
}
