const output = process.env.CHAT_PLAYGROUND_OUT || '.output'

export default defineNuxtConfig({
  modules: ['../src/module'],
  // Nuxt DevTools in `nuxt dev` (it turns itself off under vitest and in production builds).
  devtools: { enabled: true },
  // The bot's numbered messages (`count`) outside nuxt dev: NUXT_BOT_BULK=true (the browser tests).
  runtimeConfig: { botBulk: false },
  buildDir: `.nuxt${output.slice('.output'.length)}`,
  compatibilityDate: '2025-11-01',
  nitro: { output: { dir: output } },
  // Neither a guest nor a demo sign-in may pass for these (server and system are always reserved).
  // Web Push: on once NUXT_CHAT_PUSH_VAPID_PUBLIC_KEY and NUXT_CHAT_PUSH_VAPID_PRIVATE_KEY are set (`npx web-push generate-vapid-keys`).
  chat: { reservedNames: ['admin'], push: { url: '/rooms?rooms={room}' } },
})
