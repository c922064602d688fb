const output = process.env.CHAT_PLAYGROUND_OUT || '.output'

export default defineNuxtConfig({
  modules: ['../src/module'],
  devtools: { enabled: false },
  buildDir: `.nuxt${output.slice('.output'.length)}`,
  compatibilityDate: '2025-11-01',
  nitro: { output: { dir: output } },
  chat: {},
})
