import { fileURLToPath } from 'node:url'

const postgres = process.env.CHAT_FIXTURE_DB === 'postgresql'
const output = `.output${postgres ? '-pg' : ''}`

// test/fixtures/basic on the Nuxt 5 nightly (Nitro 3, h3 2, crossws 0.4): its server plugins and
// test routes, with nuxt-chat as an app installs it (the packed module in node_modules, so that
// @nuxt/kit and the rest resolve to this app's nightly copies). Built by scripts/nuxt5.sh.
export default defineNuxtConfig({
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  serverDir: fileURLToPath(new URL('../fixtures/basic/server', import.meta.url)),
  buildDir: `.nuxt${output.slice('.output'.length)}`,
  compatibilityDate: '2026-09-01',
  nitro: { output: { dir: output } },
  telemetry: false,
  chat: postgres
    ? { metrics: true, database: { connector: 'postgresql', options: { url: 'postgresql://postgres@127.0.0.1:5432/test' } } }
    : { metrics: true },
  // The shared server plugins and test routes rely on Nitro 2's auto-imports (defineNitroPlugin, createError, readBody).
  nitroLegacy: { imports: true },
})
