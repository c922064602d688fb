// nuxt-chat with Nuxt UI's chat components, working offline: no web fonts, icons bundled from
// the local @iconify-json/lucide package (provider 'none': nothing is fetched at run time).
export default defineNuxtConfig({
  modules: ['@nuxt/ui', '../../src/module'],
  devtools: { enabled: false },
  css: ['~/assets/css/main.css'],
  ui: { fonts: false },
  compatibilityDate: '2025-11-01',
  telemetry: false,
  icon: {
    provider: 'none',
    clientBundle: {
      scan: true,
      // Icons Nuxt UI's chat components use by default (app config `ui.icons`).
      icons: ['lucide:arrow-up', 'lucide:arrow-down', 'lucide:square', 'lucide:rotate-ccw', 'lucide:copy', 'lucide:x', 'lucide:loader-circle'],
    },
  },
})
