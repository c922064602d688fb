import { baseUrlApp } from '../../fixtures/platformApps'

// test/fixtures/base-url on the newest Nuxt 4. Built by scripts/platform.sh.
export default defineNuxtConfig({ ...baseUrlApp, compatibilityDate: '2025-11-01' })
