import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { startServer, type TestServer } from './server'

/** Where browser tests leave screenshots of what the user sees (part of the CI output). */
export const SCREENSHOTS = resolve('test-output/screenshots')
export const DESKTOP = { width: 1280, height: 800 }

/**
 * Debian's Chromium (CHROMIUM_PATH to use another), headless, with nothing of its own on the
 * network; a page on 127.0.0.1 may open sockets to it (Local Network Access checks off).
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-features=LocalNetworkAccessChecks'],
  })
}

/**
 * The built playground (with `env`) and Chromium for one test file: `open` makes a page in a
 * context of its own, closed after each test, and a test fails if any of its pages threw.
 */
export function playgroundInChromium(env: Record<string, string> = {}) {
  let server: TestServer | undefined
  let browser: Browser | undefined
  let contexts: BrowserContext[] = []
  let pageErrors: string[] = []
  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true })
    server = await startServer({ output: 'playground', env })
    browser = await launchChromium()
  })
  /** Close every page opened so far. */
  const closePages = async () => {
    await Promise.all(contexts.map(context => context.close()))
    contexts = []
  }
  afterEach(async () => {
    await closePages()
    expect(pageErrors).toEqual([])
    pageErrors = []
  })
  afterAll(async () => {
    await browser?.close()
    await server?.stop()
  })
  return {
    get server(): TestServer {
      return server!
    },
    /**
     * A page at `path` of the playground (or a whole URL: another server), named `label` in its errors;
     * `before` runs on it (and its context) before it loads.
     */
    async open(path: string, label: string, before?: (page: Page) => Promise<void>, viewport = DESKTOP): Promise<Page> {
      const context = await browser!.newContext({ viewport, deviceScaleFactor: 1 })
      contexts.push(context)
      const page = await context.newPage()
      page.on('pageerror', error => pageErrors.push(`${label}: ${error.message}`))
      await before?.(page)
      await page.goto(/^https?:/.test(path) ? path : server!.url(path))
      return page
    },
    closePages,
  }
}
