// The module picks this at build time: ./utils/nitroV2.ts on Nitro 2 (Nuxt 4), ./utils/nitroV3.ts on Nitro 3 (Nuxt 5).
declare module '#nuxt-chat/nitro' {
  export const nitroMajor: 2 | 3
  export const setupWebSocketServer: typeof import('./utils/nitroV2').setupWebSocketServer
  export const defineWebSocketRoute: typeof import('./utils/nitroV2').defineWebSocketRoute
  export const parseEnvOverrides: typeof import('./utils/nitroV2').parseEnvOverrides
  export const serveChatSockets: typeof import('./utils/nitroV2').serveChatSockets
  export const transportOfPeer: typeof import('./utils/nitroV2').transportOfPeer
  export const requestPath: typeof import('./utils/nitroV2').requestPath
  export const matchedRoute: typeof import('./utils/nitroV2').matchedRoute
  export const requestOrigin: typeof import('./utils/nitroV2').requestOrigin
  export const clientGone: typeof import('./utils/nitroV2').clientGone
  export const readBoundedBody: typeof import('./utils/nitroV2').readBoundedBody
  export const readBoundedBytes: typeof import('./utils/nitroV2').readBoundedBytes
  export const useStorage: typeof import('./utils/nitroV2').useStorage
  export const openEventStream: typeof import('./utils/nitroV2').openEventStream
  export const answerHeadersOnly: typeof import('./utils/nitroV2').answerHeadersOnly
  export const httpError: typeof import('./utils/nitroV2').httpError
  export const defineEventHandler: typeof import('./utils/nitroV2').defineEventHandler
  export const getQuery: typeof import('./utils/nitroV2').getQuery
  export const getRequestHeader: typeof import('./utils/nitroV2').getRequestHeader
  export const setResponseHeader: typeof import('./utils/nitroV2').setResponseHeader
  export const setResponseStatus: typeof import('./utils/nitroV2').setResponseStatus
  export const useNitroApp: typeof import('./utils/nitroV2').useNitroApp
  export const useRuntimeConfig: typeof import('./utils/nitroV2').useRuntimeConfig
  export const defineNitroPlugin: typeof import('./utils/nitroV2').defineNitroPlugin
}
