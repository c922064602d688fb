// npm's `prepare` runs after `prepack` on `npm pack` / `npm publish`, and alone when the package is
// installed from git or by a bare `npm install` here. It must never leave the dev stub
// (`nuxt-module-build build --stub`) in dist/: that loads this machine's src/ by an absolute path.
// So: nothing to do when packing (prepack has just built dist/), a real build otherwise.
// The dev stub and the generated types come from `npm run dev:prepare`.
import { execFileSync } from 'node:child_process'

if (!['pack', 'publish'].includes(process.env.npm_command ?? '')) {
  // The build reads tsconfig.json, which extends the generated .nuxt/tsconfig.json: a fresh clone has none yet.
  execFileSync('nuxt-module-build', ['prepare'], { stdio: 'inherit' })
  execFileSync('nuxt-module-build', ['build'], { stdio: 'inherit' })
}
