import { fileURLToPath } from 'node:url'
import playground from '../../../playground/nuxt.config'

// The playground on the newest Nuxt 4: its own app, server and shared folders and options, with
// nuxt-chat as an app installs it (test/nuxt4-latest/node_modules). Built by scripts/platform.sh.
const from = (path: string) => fileURLToPath(new URL(`../../../playground/${path}`, import.meta.url))
export default defineNuxtConfig({
  ...playground,
  modules: ['nuxt-chat'],
  devtools: { enabled: false },
  srcDir: from('app'),
  serverDir: from('server'),
  alias: { '#shared': from('shared') },
  telemetry: false,
})
