/**
 * The DevTools tab in the playground's dev server (`nuxi dev`): its iframe page shows the room,
 * who is in it, and a message another page sends, live; its box posts into the room as the
 * server and the chat page shows it. Leaves a screenshot in test-output/screenshots/ (in docs/ with CHAT_DOCS_SCREENSHOTS=1, for the README).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../utils/server'

const root = fileURLToPath(new URL('../..', import.meta.url))
// The README's screenshots are refreshed on request only, so a test run leaves the tree clean.
const SCREENSHOTS = process.env.CHAT_DOCS_SCREENSHOTS ? `${root}/docs` : `${root}/test-output/screenshots`
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))
const sel = (testid: string) => `[data-testid="${testid}"]`

let dev: ChildProcess | undefined
let devLog = ''
let base = ''
let database = ''
let browser: Browser
const pageErrors: string[] = []

beforeAll(async () => {
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  database = `.data/devtools-${port}.sqlite`
  // Its own build directory and database, so the production playground build and other runs are untouched.
  dev = spawn(process.execPath, [nuxi, 'dev', 'playground', '--port', String(port), '--host', '127.0.0.1', '--no-fork'], {
    cwd: root,
    // maxConnectionsPerIp 0: behind nuxi's dev proxy the upgrade carries no client address, and
    // with a cap set such upgrades are refused (reported to the lead; not this tab's concern).
    env: { ...process.env, NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '0', CHAT_PLAYGROUND_OUT: '.output-devtools-test', NUXT_CHAT_DATABASE_OPTIONS_PATH: database, NUXT_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  dev.stdout!.on('data', (data) => {
    devLog += data
  })
  dev.stderr!.on('data', (data) => {
    devLog += data
  })
  // Bounded: the dev server builds the server bundle first.
  const deadline = Date.now() + 150_000
  for (;;) {
    if (dev.exitCode !== null) throw new Error(`nuxi dev exited:\n${devLog}`)
    const response = await fetch(`${base}/__nuxt_chat/devtools`).catch(() => undefined)
    if (response?.status === 200) break
    if (Date.now() > deadline) throw new Error(`the dev server did not serve the DevTools tab:\n${devLog}`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}, 180_000)

afterAll(async () => {
  await browser?.close()
  if (dev && dev.exitCode === null) {
    const exited = new Promise(resolve => dev!.once('exit', resolve))
    dev.kill('SIGTERM')
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
    if (dev.exitCode === null) dev.kill('SIGKILL')
  }
  for (const suffix of ['', '-wal', '-shm']) if (database) rmSync(`${root}/${database}${suffix}`, { force: true })
})

async function open(path: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 720 }, deviceScaleFactor: 1 })
  const page = await context.newPage()
  page.on('pageerror', error => pageErrors.push(`${path}: ${error.message}`))
  await page.goto(`${base}${path}`)
  return page
}

describe('the DevTools tab (dev server)', () => {
  it('shows a message sent from another page live, and posts into the room as the server', { timeout: 120_000 }, async () => {
    const room = `dt-${Date.now().toString(36)}`
    const tab = await open('/__nuxt_chat/devtools')
    await expect.poll(() => tab.getAttribute('#live', 'class'), { timeout: 10_000 }).toBe('dot up')

    const chat = await open(`/?room=${room}&name=Alice`)
    await expect.poll(() => chat.getAttribute(sel('status'), 'data-status'), { timeout: 60_000, interval: 100 }).toBe('OPEN')
    // The room and who is in it.
    await expect.poll(() => tab.locator(`tr[data-room="${room}"]`).textContent(), { timeout: 10_000 }).toContain('Alice')

    await chat.fill(sel('composer-input'), 'Hello from the chat page')
    await chat.press(sel('composer-input'), 'Enter')
    await expect.poll(() => tab.locator(sel('feed')).textContent(), { timeout: 10_000 }).toContain('Alice: Hello from the chat page')

    // The box posts as the server; the chat page shows it.
    await tab.fill('input[name=room]', room)
    await tab.fill('input[name=message]', 'Maintenance at 18:00')
    await tab.click('button[type=submit]')
    await expect.poll(() => tab.textContent('#post-note'), { timeout: 10_000 }).toMatch(/^Stored as #\d+$/)
    await expect.poll(() => chat.locator(sel('message-text')).allTextContents(), { timeout: 10_000 }).toEqual(['Hello from the chat page', 'Maintenance at 18:00'])
    await expect.poll(() => tab.locator(sel('feed')).textContent(), { timeout: 10_000 }).toContain('server: Maintenance at 18:00')

    // Counters and status.
    expect(Number(await tab.textContent('#c-connections'))).toBeGreaterThanOrEqual(1)
    // The next snapshot (every second) counts both appends.
    await expect.poll(() => tab.textContent('#store'), { timeout: 5000 }).toMatch(/^node-sqlite: (?:cwd="[^"]+", )?path="\.data\/devtools-\d+\.sqlite" · 2 appends, mean \d+\.\d\d ms$/)
    expect(await tab.textContent('#bus')).toBe('local: this process (up)')

    await tab.click(`tr[data-room="${room}"]`)
    mkdirSync(SCREENSHOTS, { recursive: true })
    await tab.screenshot({ path: `${SCREENSHOTS}/devtools.png` })
    expect(pageErrors).toEqual([])
  })
})
