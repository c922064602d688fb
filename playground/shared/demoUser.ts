/** The playground's demo sign-in cookie (a name, URI-encoded): a demo, not authentication. */
export const DEMO_COOKIE = 'playground-demo-user'

/** At most the protocol's name length; the server normalizes what is left. */
const MAX_NAME = 32

/** The demo name, checked, or undefined when it is not a usable name. */
export function demoNameOf(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined
  const cleaned = name.normalize('NFKC').trim()
  // Control and format characters (zero-width, bidi) would let two ids look like one name.
  if (!cleaned || cleaned.length > MAX_NAME || /\p{C}/u.test(cleaned)) return undefined
  return cleaned
}

/** The user id the demo sign-in gives `name` (server/plugins/demoSignIn.ts), or undefined for an unusable name. */
export function demoUserId(name: string): string | undefined {
  const checked = demoNameOf(name)
  return checked ? `demo:${checked}` : undefined
}
