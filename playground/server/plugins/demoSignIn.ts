/**
 * DEMO ONLY, NOT AUTHENTICATION: the playground's "Sign in as <name>" button sets the cookie
 * `playground-demo-user` to a name, and this hook believes it. Anyone can be anyone, no password.
 * It exists so that the playground can show what signed-in users get (read state, the rooms list
 * with unread badges). A real app reads its own session here, see README "Server hooks".
 * Without the cookie a peer stays a guest, exactly as before.
 */
import { DEMO_COOKIE, demoNameOf } from '#shared/demoUser'
import { checkGuestName } from '../../../src/runtime/server/utils/names'

/** The demo name in the request's cookie, if there is a usable one. */
function demoName(headers: Headers): string | undefined {
  for (const part of (headers.get('cookie') ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key !== DEMO_COOKIE) continue
    try {
      return demoNameOf(decodeURIComponent(value.join('=')))
    }
    catch {
      return undefined // not URI-encoded: no demo user
    }
  }
  return undefined
}

export default defineNitroPlugin((nitroApp) => {
  nitroApp.hooks.hook('chat:identify', (ctx) => {
    const wish = demoName(ctx.request.headers)
    // The module's check of guests' names: a demo name that is reserved ("server", "admin", a look-alike) stays a guest.
    const checked = wish ? checkGuestName(wish, useRuntimeConfig().chat.reservedNames ?? [], []) : undefined
    if (checked && 'name' in checked) ctx.user = { id: `demo:${checked.name}`, name: checked.name }
  })
})
