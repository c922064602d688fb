/**
 * Notifications in Chromium against the built playground (`/rooms`, issue 25): with the
 * permission granted (playwright's `grantPermissions`), "Notify me" registers the module's service
 * worker (`/_chat/push/sw.js`, scope `/` thanks to `Service-Worker-Allowed`) and tries to
 * subscribe; headless Chromium has no push service to register with, so the subscription attempt
 * ends in the error the page shows ("Registration failed - permission denied"). A push delivered to the worker through DevTools
 * (`ServiceWorker.deliverPushMessage`) shows a notification with the payload's text as text.
 * Without the permission, the browser's refusal is shown. Muting a room is stored on the server.
 */
import { resolve } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { playgroundInChromium, SCREENSHOTS } from '../utils/browser'
import { vapidKeys } from '../utils/pushReceiver'
import type { TestServer } from '../utils/server'

const keys = vapidKeys()
const playground = playgroundInChromium({ NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY: keys.publicKey, NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY: keys.privateKey })
const sel = (testid: string) => `[data-testid="${testid}"]`

/** `name` signed in (demo cookie) on `/rooms?rooms=lobby`, the notifications permission granted or not. */
async function signedIn(name: string, grant: boolean): Promise<{ context: BrowserContext, page: Page, server: TestServer }> {
  const server = playground.server
  const page = await playground.open('/rooms?rooms=lobby', name, async (page) => {
    if (grant) await page.context().grantPermissions(['notifications'], { origin: server.url('').replace(/\/$/, '') })
    await page.context().addCookies([{ name: 'playground-demo-user', value: encodeURIComponent(name), url: server.url('/') }])
  })
  await page.locator(sel('notify')).waitFor({ timeout: 15_000 })
  return { context: page.context(), page, server }
}

describe('playground: notifications for when you are away', () => {
  it('granted: registers the service worker with scope /, tries to subscribe, shows a pushed notification as text', async () => {
    const { context, page, server } = await signedIn('Ann Push', true)
    expect(await page.locator(sel('notify-permission')).textContent()).toBe('granted')
    expect(await page.locator(sel('notify-state')).getAttribute('data-state')).toBe('idle')
    await page.screenshot({ path: resolve(SCREENSHOTS, 'push-before.png') })

    await page.locator(sel('notify-toggle')).click()
    await expect.poll(() => page.locator(sel('notify-state')).getAttribute('data-state'), { timeout: 15_000 }).not.toBe('working')
    // The worker is the module's, for the whole site, and active.
    const registration = await page.evaluate(async () => {
      const found = await navigator.serviceWorker.getRegistration('/')
      return { scope: found?.scope, script: found?.active?.scriptURL }
    })
    expect(registration).toEqual({ scope: server.url('/'), script: server.url('/_chat/push/sw.js') })
    // Headless Chromium has no push service (FCM) to register with: `pushManager.subscribe` rejects, and the page says so.
    expect(await page.locator(sel('notify-state')).getAttribute('data-state')).toBe('error')
    expect(await page.locator(sel('notify-error')).textContent()).toContain('Registration failed')
    await page.screenshot({ path: resolve(SCREENSHOTS, 'push-subscribe-attempt.png') })

    // A push handed to the worker by DevTools, as a push service would: shown with its text as text.
    const cdp = await context.newCDPSession(page)
    const registrations = new Promise<{ registrationId: string, scopeURL: string }[]>((done) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        if (registrations.length) done(registrations)
      })
    })
    await cdp.send('ServiceWorker.enable')
    const { registrationId } = (await registrations).find(entry => entry.scopeURL === server.url('/'))!
    const payload = { title: 'Ann', body: '<b>lunch</b> at noon?', room: 'lobby', url: '/rooms?rooms=lobby', count: 1, tag: 'chat:lobby' }
    const deliver = () => cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url('').replace(/\/$/, ''), registrationId, data: JSON.stringify(payload) })
    await deliver()
    // A worker still starting may drop a delivery (seen under load): handed again until shown; one tag shows once however often.
    await expect.poll(async () => {
      const shown = await page.evaluate(async () => {
        const found = await navigator.serviceWorker.getRegistration('/')
        return (await found!.getNotifications()).map(notification => ({ title: notification.title, body: notification.body, tag: notification.tag, data: notification.data }))
      })
      if (!shown.length) await deliver()
      return shown
    }, { timeout: 20_000, interval: 1000 }).toEqual([{ title: 'Ann', body: '<b>lunch</b> at noon?', tag: 'chat:lobby', data: { url: '/rooms?rooms=lobby' } }])
  })

  it('not granted: the browser\'s refusal is shown; muting a room is kept by the server', async () => {
    const { context, page, server } = await signedIn('Bob Push', false)
    await page.locator(sel('notify-toggle')).click()
    await expect.poll(() => page.locator(sel('notify-state')).getAttribute('data-state'), { timeout: 15_000 }).toBe('error')
    expect(await page.locator(sel('notify-permission')).textContent()).toBe('denied')
    expect(await page.locator(sel('notify-error')).textContent()).toContain('not allowed')
    // Mute the room shown: the button flips, the server lists it for Bob.
    await page.locator(sel('notify-mute')).click()
    await expect.poll(() => page.locator(sel('notify-mute')).getAttribute('data-muted')).toBe('true')
    const muted = await context.request.get(server.url('/_chat/push/mute')).then(response => response.json())
    expect(muted).toEqual({ rooms: ['lobby'] })
    await page.screenshot({ path: resolve(SCREENSHOTS, 'push-denied-muted.png') })
  })
})
