import { chromium, type Browser } from 'playwright-core'

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
