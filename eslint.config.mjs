// @ts-check
import { createConfigForNuxt } from '@nuxt/eslint-config/flat'

export default createConfigForNuxt({
  features: { tooling: true, stylistic: true },
  dirs: { src: ['./playground', './test/fixtures/readme-snippets/app', './test/fixtures/base-url/app'] },
}).append({
  ignores: ['**/.output*', '**/.nuxt', 'dist', 'test-output', 'bench/results'],
})
