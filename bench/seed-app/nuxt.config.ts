// The seed: a plain Nuxt app with crossws's chat example as its only WebSocket handler.
export default defineNuxtConfig({
  devtools: { enabled: false },
  buildDir: '.nuxt-bench',
  compatibilityDate: '2025-11-01',
  nitro: { experimental: { websocket: true }, output: { dir: '.output-bench' } },
  telemetry: false,
})
