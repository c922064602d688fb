// @ts-check
import { createConfigForNuxt } from '@nuxt/eslint-config/flat'

export default createConfigForNuxt({
  features: { tooling: true, stylistic: true },
  dirs: { src: ['./playground', './test/fixtures/readme-snippets/app', './test/fixtures/base-url/app'] },
}).append({
  ignores: ['**/.output*', '**/.nuxt*', 'dist', 'test-output', 'bench/results'],
}, {
  // The README's quick-setup page, kept byte-equal to the README's compact example.
  files: ['test/fixtures/readme/app/pages/**'],
  rules: { 'vue/multi-word-component-names': 'off', 'vue/max-attributes-per-line': 'off', 'vue/singleline-html-element-content-newline': 'off' },
})
