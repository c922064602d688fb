import { fileURLToPath } from 'node:url'
import { buildDir, chat, output } from '../fixtures/basic/fixtureBuild'

// test/fixtures/basic on the Nuxt 5 nightly (Nitro 3, h3 2, crossws 0.4): its server plugins and
// test routes, with nuxt-chat as an app installs it (the packed module in node_modules, so that
// @nuxt/kit and the rest resolve to this app's nightly copies). Built by scripts/nuxt5.sh.
export default defineNuxtConfig({
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  serverDir: fileURLToPath(new URL('../fixtures/basic/server', import.meta.url)),
  buildDir,
  compatibilityDate: '2026-09-01',
  nitro: { output: { dir: output } },
  telemetry: false,
  chat,
  // The shared server plugins and test routes rely on Nitro 2's auto-imports (defineNitroPlugin, createError, readBody).
  nitroLegacy: { imports: true },
})
