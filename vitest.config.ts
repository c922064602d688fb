import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

/** Tests that install or build a whole app (npm, nuxi, vue-tsc): they run first, before the tests they would starve of CPU. */
const APP_BUILDS = ['test/e2e/package.test.ts', 'test/e2e/readme.test.ts', 'test/e2e/baseUrl.test.ts']
/** Floods that load the machine on purpose (500 connections, 300 dripping sockets, thousands of joins a second): they run last and alone, so their load cannot stretch the bounded waits of other tests. */
const FLOODS = ['test/e2e/limitsModel.test.ts', 'test/e2e/limitsOffice.test.ts', 'test/e2e/limitsJoins.test.ts']

export default defineConfig({
  resolve: {
    // useChat() outside a Nuxt app (unit tests): the runtime config it reads.
    alias: { '#app': fileURLToPath(new URL('./test/unit/stubs/imports.ts', import.meta.url)) },
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Several tests run server processes and a browser: two files at a time on two cores.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'app-builds', include: APP_BUILDS, sequence: { groupOrder: 0 } } },
      // Pure logic, some of it timed (event-loop stalls, checkpoints): alone, before any server loads the machine.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 1 } } },
      // The fixtures and the playground are built once, for these (test/globalSetup.ts). Never the
      // tests packages ship in test/nuxt5/node_modules (configDefaults.exclude).
      { extends: true, test: { name: 'chat', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...APP_BUILDS, ...FLOODS, 'test/unit/**'], globalSetup: ['./test/globalSetup.ts'], sequence: { groupOrder: 2 } } },
      { extends: true, test: { name: 'floods', include: FLOODS, globalSetup: ['./test/globalSetup.ts'], sequence: { groupOrder: 3 } } },
    ],
  },
})
