// The module generates this at build time (src/routes.ts): each of its routes, as registered, with the methods it serves.
declare module '#nuxt-chat/routes' {
  /** `Allow` by route pattern (`/api/sse`: `GET, HEAD, POST, OPTIONS`). */
  export const allowedMethods: Record<string, string>
}
