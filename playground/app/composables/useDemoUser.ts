import { DEMO_COOKIE, demoNameOf } from '#shared/demoUser'

/**
 * The playground's demo sign-in (a cookie with a name, no password; see
 * server/plugins/demoSignIn.ts). Signing in or out reloads the page: the server decides who a
 * connection is when it opens, so every connection has to open again.
 */
export function useDemoUser() {
  const cookie = useCookie<string | null>(DEMO_COOKIE, {
    // Kept as a plain string: Nuxt's default would parse `123` into a number.
    encode: value => encodeURIComponent(value ?? ''),
    decode: decodeURIComponent,
    sameSite: 'lax',
    maxAge: 30 * 24 * 3600,
  })
  const demoName = computed(() => demoNameOf(cookie.value))

  async function reloadAs(name: string | null) {
    cookie.value = name
    // Let useCookie write document.cookie before the page goes.
    await nextTick()
    window.location.reload()
  }

  return {
    /** The demo user's name, or undefined for a guest. */
    demoName,
    /** Sign in under `name` (reloads the page); false when it is not a usable name. */
    signIn(name: string): boolean {
      const checked = demoNameOf(name)
      if (checked) void reloadAs(checked)
      return !!checked
    },
    signOut: () => void reloadAs(null),
  }
}
