/**
 * The service worker `<push.route>/sw.js` serves: shows each push's `title` and `body` (as text:
 * a notification has no markup) and on a click focuses a tab of the app at `url`, or opens one.
 * Only a same-origin `url` is followed.
 */
export const PUSH_WORKER = `// nuxt-chat's push service worker (docs/PROTOCOL.md, "Notifications")
self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', event => event.waitUntil(self.clients.claim()))
self.addEventListener('push', (event) => {
  let data = {}
  try { data = event.data ? event.data.json() : {} } catch { data = { body: event.data ? event.data.text() : '' } }
  const title = String(data.title || 'New message').slice(0, 200)
  event.waitUntil(self.registration.showNotification(title, {
    body: String(data.body || '').slice(0, 500),
    tag: typeof data.tag === 'string' ? data.tag : undefined,
    data: { url: typeof data.url === 'string' ? data.url : '/' },
  }))
})
self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  let url = new URL('/', self.location.origin)
  try {
    const wanted = new URL(event.notification.data && event.notification.data.url || '/', self.location.origin)
    if (wanted.origin === self.location.origin) url = wanted
  } catch {}
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((tabs) => {
    for (const tab of tabs) {
      if (new URL(tab.url).origin !== url.origin) continue
      return (tab.navigate ? tab.navigate(url.href).catch(() => tab) : Promise.resolve(tab)).then(client => (client || tab).focus())
    }
    return self.clients.openWindow(url.href)
  }))
})
`
