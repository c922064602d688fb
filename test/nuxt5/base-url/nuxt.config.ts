import { fileURLToPath } from 'node:url'

// test/fixtures/base-url on the Nuxt 5 nightly (an app under `app.baseURL`). Built by scripts/platform.sh.
export default defineNuxtConfig({
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  app: { baseURL: '/chat-app/' },
  srcDir: fileURLToPath(new URL('../../fixtures/base-url/app', import.meta.url)),
  compatibilityDate: '2026-09-01',
  telemetry: false,
})
