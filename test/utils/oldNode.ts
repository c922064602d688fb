import { spawnSync } from 'node:child_process'

/** A Node.js older than 22.5 (no node:sqlite) on this machine, e.g. the system's Node 20. */
export function oldNode(): string | undefined {
  const candidates = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
  return ['/usr/bin/node', ...candidates].find((node) => {
    const version = spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout?.trim() ?? ''
    const [major = 0, minor = 0] = version.split('.').map(Number)
    return version !== '' && (major < 22 || (major === 22 && minor < 5))
  })
}
