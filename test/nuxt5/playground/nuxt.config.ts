import { playgroundApp } from '../../fixtures/platformApps'

// The playground on the Nuxt 5 nightly. Built by scripts/platform.sh.
export default defineNuxtConfig({
  ...playgroundApp,
  // The playground's server routes rely on Nitro 2's auto-imports (defineEventHandler, readBody, createError).
  nitroLegacy: { imports: true },
})
