import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: {
    // useChat() outside a Nuxt app (unit tests): the runtime config it reads.
    alias: { '#imports': fileURLToPath(new URL('./test/unit/stubs/imports.ts', import.meta.url)) },
  },
  test: {
    globalSetup: ['./test/globalSetup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Several tests run server processes and a browser: two files at a time on two cores.
    maxWorkers: 2,
  },
})
