// The module generates this at build time: the db0 connector named in `chat.database`.
declare module '#nuxt-chat/connector' {
  const connector: ((options: Record<string, unknown>) => import('db0').Connector) | undefined
  export default connector
}
