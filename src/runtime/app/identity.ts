/** Random ids the client makes: the tab's guest key and message cids. */

const GUEST_KEY_STORAGE = 'nuxt-chat:guest-key'
const GUEST_KEY_PATTERN = /^[\w-]{22,64}$/
// Kept here when sessionStorage is unavailable (blocked storage, sandboxed frames): one key per page load.
let memoryGuestKey: string | undefined

function randomBytes(count: number): Uint8Array {
  // getRandomValues exists on plain-http pages too (randomUUID does not).
  return globalThis.crypto.getRandomValues(new Uint8Array(count))
}

/** A new guest key: 128 random bits as base64url (22 characters). */
export function newGuestKey(): string {
  let binary = ''
  for (const byte of randomBytes(16)) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** A message's client id: 128 random bits as hex (the cid alphabet has no `_`), no time, no counter. */
export function randomCid(): string {
  let hex = ''
  for (const byte of randomBytes(16)) hex += byte.toString(16).padStart(2, '0')
  return hex
}

/**
 * This tab's guest key (docs/PROTOCOL.md, "Identity"): made once, kept in sessionStorage so a
 * reload or reconnect keeps the same guest id, and another tab is another guest.
 */
export function guestKey(): string {
  try {
    const stored = globalThis.sessionStorage?.getItem(GUEST_KEY_STORAGE)
    if (stored && GUEST_KEY_PATTERN.test(stored)) return stored
    const key = newGuestKey()
    globalThis.sessionStorage?.setItem(GUEST_KEY_STORAGE, key)
    if (globalThis.sessionStorage) return key
  }
  catch {
    // Storage refused (privacy mode, sandbox): fall through to a key for this page load.
  }
  return memoryGuestKey ??= newGuestKey()
}
