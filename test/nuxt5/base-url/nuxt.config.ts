import { baseUrlApp } from '../../fixtures/platformApps'

// test/fixtures/base-url on the Nuxt 5 nightly. Built by scripts/platform.sh.
export default defineNuxtConfig({ ...baseUrlApp, compatibilityDate: '2026-09-01' })
