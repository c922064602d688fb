import { playgroundApp } from '../../fixtures/platformApps'

// The playground on the newest Nuxt 4. Built by scripts/platform.sh.
export default defineNuxtConfig(playgroundApp)
