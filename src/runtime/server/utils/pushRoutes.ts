// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { readBoundedBody, setResponseHeader, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame, type ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { limitSubjectOf } from './chatLimits'
import { admitHttpRequest, refuse, refuseLimited } from './httpAdmission'
import { useChatHub, useChatPush } from './useChatHub'
import type { ChatPush } from '../push/pushService'

/** The push routes' common start: push on, the request admitted as a version 2 one, a signed-in person, within the reads limit. */
export async function admitPushRequest(event: H3Event): Promise<{ push: ChatPush, user: ChatUser } | { refused: ChatErrorFrame }> {
  const push = useChatPush()
  if (!push?.enabled) return { refused: refuse(event, 503, errorFrame('unavailable', 'Push notifications are not configured on this server')) }
  const admitted = await admitHttpRequest(event, 2)
  if ('refused' in admitted) return admitted
  const { admission } = admitted
  if (admission.user.guest) return { refused: refuse(event, 401, errorFrame('unauthorized', 'Sign in to get notifications: guests have none')) }
  // Each change is a write: counted as a `read` is.
  const limited = useChatHub().readRefusal(limitSubjectOf(admission))
  if (limited) return { refused: refuseLimited(event, limited) }
  return { push, user: admission.user }
}

/** A JSON object body within `maxPayload` and `bodyTimeout`, or the refusal answered. */
export async function readJsonBody(event: H3Event): Promise<Record<string, unknown> | { refused: ChatErrorFrame }> {
  const { maxPayload, bodyTimeout } = useRuntimeConfig().chat as ChatRuntimeConfig
  const body = await readBoundedBody(event, maxPayload, bodyTimeout)
  if (body === 'too_large') return { refused: refuse(event, 413, errorFrame('too_long', `Body is larger than ${maxPayload} bytes`)) }
  if (body === 'timeout') {
    setResponseHeader(event, 'connection', 'close')
    return { refused: refuse(event, 408, errorFrame('bad_request', `Body not received within ${bodyTimeout} ms`)) }
  }
  try {
    const data: unknown = JSON.parse(body)
    if (data && typeof data === 'object' && !Array.isArray(data)) return data as Record<string, unknown>
  }
  catch {
    // Answered below.
  }
  return { refused: refuse(event, 400, errorFrame('bad_request', 'Body must be a JSON object')) }
}
