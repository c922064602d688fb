import { fileURLToPath } from 'node:url'
import { buildDir, chat, output } from '../fixtures/basic/fixtureBuild'

// test/fixtures/basic on the newest Nuxt 4 (the repo itself builds it on the oldest supported, 4.5):
// its server plugins and test routes, with nuxt-chat as an app installs it (the packed module in
// node_modules). Built by scripts/platform.sh. Vite is pinned in package.json: 8.4.1 breaks every
// Nuxt build (README, "Quick setup").
export default defineNuxtConfig({
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  serverDir: fileURLToPath(new URL('../fixtures/basic/server', import.meta.url)),
  buildDir,
  compatibilityDate: '2025-11-01',
  nitro: { output: { dir: output } },
  telemetry: false,
  chat,
})
