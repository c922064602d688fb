const output = process.env.CHAT_PLAYGROUND_OUT || '.output'

export default defineNuxtConfig({
  modules: ['../src/module'],
  devtools: { enabled: false },
  compatibilityDate: '2025-11-01',
  buildDir: `.nuxt${output.slice('.output'.length)}`,
  nitro: { output: { dir: output } },
  chat: {},
})
