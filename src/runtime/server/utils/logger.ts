import { consola } from 'consola'

/** The module's logger (consola, as Nitro's). */
export const chatLogger = consola.withTag('nuxt-chat')
