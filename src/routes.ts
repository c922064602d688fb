import { addServerHandler, addServerTemplate, type Resolver } from '@nuxt/kit'

/** The methods a route of the module may serve, in the order `Allow` lists them. */
const METHODS = ['get', 'head', 'post', 'delete', 'options'] as const

/** A route's handlers by method, as paths the module's resolver resolves. */
export type ChatRouteHandlers = Partial<Record<typeof METHODS[number], string>>

/** Adds one HTTP route of the module, with its handlers. */
export type AddChatRoute = (route: string, handlers: ChatRouteHandlers) => void

/**
 * The module's HTTP routes (docs/PROTOCOL.md, "Methods"). Each gets its handlers, `HEAD` served by
 * its `GET` one unless it has its own, `OPTIONS` by the CORS preflight unless it has its own, and
 * one method-less handler that answers any other method `405` with `Allow`: without it, Nitro 2's
 * and Nitro 3's routers hand such a request to the app's pages. This table is the one source of
 * each route's `Allow` and of its preflight's `Access-Control-Allow-Methods`.
 */
export function chatRoutes(resolver: Resolver): AddChatRoute {
  // Each route's `Allow`, for the runtime (./runtime/server/utils/routeMethods.ts); read when Nitro builds, after every route was added.
  const allowed: Record<string, string> = {}
  addServerTemplate({ filename: '#nuxt-chat/routes', getContents: () => `export const allowedMethods = ${JSON.stringify(allowed)}` })
  const methodNotAllowed = resolver.resolve('./runtime/server/api/methodNotAllowed')
  return (route, handlers) => {
    const served: ChatRouteHandlers = { head: handlers.get, options: './runtime/server/api/preflight.options', ...handlers }
    const methods = METHODS.filter(method => served[method])
    for (const method of methods) addServerHandler({ route, method, handler: resolver.resolve(served[method]!) })
    addServerHandler({ route, handler: methodNotAllowed })
    allowed[route] = methods.map(method => method.toUpperCase()).join(', ')
  }
}
