// This repository installs h3 1 only: `nitro/h3` (h3 2) typed by what ./utils/nitroV3.ts uses of it.
declare module 'nitro/h3' {
  export * from 'h3'
  /** h3 2's error with a status. */
  export class HTTPError extends Error {
    constructor(init: { status: number, message?: string, data?: unknown })
  }
}
declare module 'nitro' {
  export { defineNitroPlugin as definePlugin } from 'nitropack/runtime'
}
declare module 'nitro/app' {
  export { useNitroApp } from 'nitropack/runtime'
}
declare module 'nitro/runtime-config' {
  export { useRuntimeConfig } from 'nitropack/runtime'
}
declare module 'nitro/storage' {
  export { useStorage } from 'nitropack/runtime'
}
