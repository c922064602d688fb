import type { NitroApp } from 'nitropack/types'

type Hooks = Record<string, unknown>
interface WebSocketOptions { resolve: (info: { url?: string, request?: { url?: string } }) => Promise<Hooks> }
interface Resolvable { __resolve__?: (path: string) => Promise<{ handler?: { __websocket__?: Hooks } } | undefined> }

/**
 * Under `app.baseURL` Nitro's WebSocket resolver finds no route (middleware mounted at the base
 * path answers first, with no hooks), so upgrades open and stay silent. This resolves
 * `<base>/<route>` upgrades against Nitro's router with the base removed, after Nitro's own
 * resolver comes back empty. Call it after `h3App.options.websocket` is final.
 */
export function resolveWebSocketsUnderBase(nitroApp: NitroApp, baseURL: string) {
  const base = baseURL.replace(/\/+$/, '')
  const router = (nitroApp.router as unknown as { handler?: Resolvable }).handler
  if (!base || !router?.__resolve__) return
  const app = nitroApp.h3App as unknown as { websocket: WebSocketOptions }
  const websocket = app.websocket
  Object.defineProperty(app, 'websocket', {
    configurable: true,
    value: {
      ...websocket,
      async resolve(info: Parameters<WebSocketOptions['resolve']>[0]) {
        const hooks = await websocket.resolve(info)
        if (Object.keys(hooks).length) return hooks
        const { pathname } = new URL(info.request?.url ?? info.url ?? '/', 'http://localhost')
        if (!pathname.startsWith(`${base}/`)) return hooks
        const resolved = await router.__resolve__!(pathname.slice(base.length))
        return resolved?.handler?.__websocket__ ?? hooks
      },
    },
  })
}
