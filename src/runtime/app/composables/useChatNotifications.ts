import { getCurrentScope, onScopeDispose, shallowRef, type ShallowRef } from 'vue'
import { useRuntimeConfig } from '#app'
import type { ChatPublicRuntimeConfig } from '../../types'

/** The browser's notification permission, or `unsupported` (no service worker, Push API or Notification API; server side; push off on the server). */
export type ChatNotificationPermission = 'default' | 'granted' | 'denied' | 'unsupported'

/** Where subscribing stands. */
export type ChatPushState = 'unsupported' | 'idle' | 'working' | 'subscribed' | 'error'

export interface UseChatNotificationsOptions {
  /** The service worker's scope: the module serves it with `Service-Worker-Allowed: /`. @default '/' */
  scope?: string
}

/** Web Push for the signed-in person (docs/PROTOCOL.md, "Notifications"). */
export interface UseChatNotificationsReturn {
  permission: Readonly<ShallowRef<ChatNotificationPermission>>
  state: Readonly<ShallowRef<ChatPushState>>
  /** This browser has a subscription the server keeps. */
  subscribed: Readonly<ShallowRef<boolean>>
  /** Why the last step failed (permission refused, push service unreachable, the server's refusal). */
  error: Readonly<ShallowRef<string | null>>
  /** Rooms the person muted for notifications (loaded with `refresh`). */
  mutedRooms: Readonly<ShallowRef<string[]>>
  /** Ask for the permission (call it from a click), register the service worker, subscribe, tell the server; true when subscribed. */
  subscribe: () => Promise<boolean>
  /** End this browser's subscription, here and on the server. */
  unsubscribe: () => Promise<boolean>
  /** Mute (or unmute) a room's notifications for the person. */
  mute: (room: string, muted?: boolean) => Promise<boolean>
  /** Read the permission, this browser's subscription and the muted rooms again. */
  refresh: () => Promise<void>
}

/** `base64url` text as the bytes `pushManager.subscribe` takes. */
function keyBytes(key: string): Uint8Array<ArrayBuffer> {
  const text = atob(key.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(key.length / 4) * 4, '='))
  const bytes = new Uint8Array(new ArrayBuffer(text.length))
  for (let index = 0; index < text.length; index++) bytes[index] = text.charCodeAt(index)
  return bytes
}

/** A refusal's message (the server's `error` frame), else the status. */
async function refusalOf(response: Response): Promise<string> {
  const frame = await response.json().catch(() => undefined) as { message?: string } | undefined
  return frame?.message ?? `HTTP ${response.status}`
}

/**
 * Notifications for when the person is away: permission state, subscribe / unsubscribe through
 * the module's service worker (`<push.route>/sw.js`), per-room mute. Client only; on the server
 * and in browsers without the Push API everything stays `unsupported`.
 */
export function useChatNotifications(options: UseChatNotificationsOptions = {}): UseChatNotificationsReturn {
  const route = (useRuntimeConfig().public.chat as ChatPublicRuntimeConfig).pushRoute ?? ''
  const supported = import.meta.client && !!route && typeof navigator !== 'undefined' && 'serviceWorker' in navigator && typeof window !== 'undefined' && 'PushManager' in window && 'Notification' in window
  const permission = shallowRef<ChatNotificationPermission>(supported ? Notification.permission : 'unsupported')
  const state = shallowRef<ChatPushState>(supported ? 'idle' : 'unsupported')
  const subscribed = shallowRef(false)
  const error = shallowRef<string | null>(null)
  const mutedRooms = shallowRef<string[]>([])
  const scope = options.scope ?? '/'
  let alive = true
  const json = (method: string, body?: unknown) => ({ method, headers: { 'content-type': 'application/json', 'accept': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })

  const fail = (message: string) => {
    error.value = message
    state.value = 'error'
    return false
  }

  async function refresh() {
    if (!supported) return
    permission.value = Notification.permission
    const registration = await navigator.serviceWorker.getRegistration(scope)
    const subscription = await registration?.pushManager.getSubscription()
    if (!alive) return
    subscribed.value = !!subscription
    if (state.value !== 'working') state.value = subscription ? 'subscribed' : 'idle'
    const response = await fetch(`${route}/mute`, { headers: { accept: 'application/json' } }).catch(() => undefined)
    if (alive && response?.ok) mutedRooms.value = ((await response.json()) as { rooms: string[] }).rooms
  }

  async function subscribe() {
    if (!supported) return false
    state.value = 'working'
    error.value = null
    try {
      permission.value = await Notification.requestPermission()
      if (permission.value !== 'granted') return fail('Notifications are not allowed in this browser')
      const registration = await navigator.serviceWorker.register(`${route}/sw.js`, { scope })
      await navigator.serviceWorker.ready
      const keyResponse = await fetch(`${route}/key`, { headers: { accept: 'application/json' } })
      if (!keyResponse.ok) return fail(await refusalOf(keyResponse))
      const { publicKey } = await keyResponse.json() as { publicKey: string }
      const subscription = await registration.pushManager.getSubscription() ?? await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) })
      const response = await fetch(route, json('POST', subscription.toJSON()))
      if (!response.ok) return fail(await refusalOf(response))
      subscribed.value = true
      state.value = 'subscribed'
      return true
    }
    catch (caught) {
      return fail(caught instanceof Error ? caught.message : String(caught))
    }
  }

  async function unsubscribe() {
    if (!supported) return false
    state.value = 'working'
    error.value = null
    try {
      const registration = await navigator.serviceWorker.getRegistration(scope)
      const subscription = await registration?.pushManager.getSubscription()
      if (subscription) {
        await fetch(route, json('DELETE', { endpoint: subscription.endpoint }))
        await subscription.unsubscribe()
      }
      subscribed.value = false
      state.value = 'idle'
      return true
    }
    catch (caught) {
      return fail(caught instanceof Error ? caught.message : String(caught))
    }
  }

  async function mute(room: string, muted = true) {
    if (!route) return false
    const response = await fetch(`${route}/mute`, json('POST', { room, muted })).catch(() => undefined)
    if (!response?.ok) {
      error.value = response ? await refusalOf(response) : 'The server could not be reached'
      return false
    }
    const rest = mutedRooms.value.filter(name => name !== room)
    mutedRooms.value = muted ? [...rest, room].sort() : rest
    return true
  }

  if (supported) void refresh().catch(() => {})
  if (getCurrentScope()) {
    onScopeDispose(() => {
      alive = false
    })
  }
  return { permission, state, subscribed, error, mutedRooms, subscribe, unsubscribe, mute, refresh }
}
