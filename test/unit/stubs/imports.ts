// What useChat() takes from Nuxt's '#app' in unit tests: the module's public runtime config.
export function useRuntimeConfig() {
  return { public: { chat: { route: '/_ws', sseRoute: '/api/sse', maxLength: 2000, editWindow: 0, heartbeat: { interval: 25_000, timeout: 10_000 } } } }
}

// Outside a Nuxt app there is no hydration.
export function tryUseNuxtApp() {
  return null as { isHydrating?: boolean } | null
}
