import { fileURLToPath } from 'node:url'

// test/fixtures/base-url on the newest Nuxt 4 (an app under `app.baseURL`). Built by scripts/platform.sh.
export default defineNuxtConfig({
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  app: { baseURL: '/chat-app/' },
  srcDir: fileURLToPath(new URL('../../fixtures/base-url/app', import.meta.url)),
  compatibilityDate: '2025-11-01',
  telemetry: false,
})
