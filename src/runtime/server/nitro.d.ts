// The module picks this at build time: ./utils/nitroV2.ts on Nitro 2 (Nuxt 4), ./utils/nitroV3.ts on Nitro 3 (Nuxt 5).
declare module '#nuxt-chat/nitro' {
  export const nitroMajor: 2 | 3
  export const setupWebSocketServer: typeof import('./utils/nitroV2').setupWebSocketServer
  export const defineWebSocketRoute: typeof import('./utils/nitroV2').defineWebSocketRoute
  export const parseEnvOverrides: typeof import('./utils/nitroV2').parseEnvOverrides
  export const streamWritten: typeof import('./utils/nitroV2').streamWritten
  export const capIncomingFrames: typeof import('./utils/nitroV2').capIncomingFrames
}
