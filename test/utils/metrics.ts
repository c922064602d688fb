import type { TestServer } from './server'

/**
 * Scrape a server's metrics route (the fixture turns it on): the samples by `name{labels}`.
 * Without a token unless the server was started with one (`NUXT_CHAT_METRICS_TOKEN`).
 */
export async function scrapeMetrics(server: TestServer, token?: string): Promise<Map<string, number>> {
  const response = await fetch(server.url('/_chat/metrics'), { headers: token ? { authorization: `Bearer ${token}` } : {} })
  if (response.status !== 200) throw new Error(`metrics answered ${response.status}`)
  if (response.headers.get('content-type') !== 'text/plain; version=0.0.4; charset=utf-8') throw new Error(`metrics content-type ${response.headers.get('content-type')}`)
  const samples = new Map<string, number>()
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}

/** How the WebSocket transport wrote its frames (the `nuxt_chat_ws_*` metrics). */
export async function transportCounters(server: TestServer) {
  const samples = await scrapeMetrics(server)
  return {
    fastWrites: samples.get('nuxt_chat_ws_writes_total{path="fast"}') ?? 0,
    publicWrites: samples.get('nuxt_chat_ws_writes_total{path="public"}') ?? 0,
    flushes: samples.get('nuxt_chat_ws_flushes_total') ?? 0,
    leanConnections: samples.get('nuxt_chat_ws_lean_connections_total') ?? 0,
    untrackedFromShutdown: samples.get('nuxt_chat_ws_untracked_from_shutdown_total') ?? 0,
    fallbacks: [...samples.keys()].filter(key => key.startsWith('nuxt_chat_ws_fallbacks{')),
  }
}
