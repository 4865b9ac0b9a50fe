'use strict'

const { KeyRotatorError } = require('./errors.js')

/**
 * How each provider family takes its key. The SDK's own key (say `apiKey: "unused"`) is
 * replaced, whichever header it used.
 */
const AUTH_HEADERS = ['authorization', 'x-api-key', 'api-key', 'x-goog-api-key']
const DIALECTS = {
  anthropic: (headers, key) => headers.set('x-api-key', key),
  'azure-openai': (headers, key) => headers.set('api-key', key),
  gemini: (headers, key, url) => {
    url.searchParams.delete('key')
    headers.set('x-goog-api-key', key)
  },
}
const bearer = (headers, key) => headers.set('authorization', `Bearer ${key}`)

/**
 * A `fetch` that sends each request with a key of `provider`, written the provider's way.
 *
 * The core's `execute` loop runs the request: an answer that blames the key (rate limit,
 * exhausted quota, invalid key) cools or disables it and the request is sent again at once
 * with the next key, or with the next provider of `options.fallback`; server errors are
 * retried after a backoff. Only the last answer reaches the caller; a successful body, even
 * a stream, is handed on untouched.
 *
 * When no key is left it rejects with a `KeyRotatorError` (`code: "ERR_NO_KEY_AVAILABLE"`)
 * whose `retryAt` is the exact time a key comes back (Unix ms) and `retryAfter` the wait in
 * seconds; its `response` is the provider's last answer, if there was one.
 *
 * Options: `fallback` (provider names, tried in order when every earlier one has no key),
 * `baseURL` (provider → base URL, to send a fallback provider's requests to its own server:
 * the prefix of the primary's base URL is swapped for the fallback's), `maxAttempts`,
 * `attemptTimeoutMs`, `deadlineMs` (wait for a cooling key that comes back before it),
 * `backoffBaseMs`, `backoffMaxMs`, `session` and `fetch` (the underlying fetch, the global
 * one by default).
 *
 * @example
 * const client = new OpenAI({ apiKey: 'unused', fetch: rotator.fetch('openai') })
 */
function rotatingFetch(rotator, provider, options = {}) {
  const { fallback, baseURL = {}, fetch: baseFetch = globalThis.fetch, ...plan } = options
  const families = new Map()
  const familyOf = (p) => {
    if (!families.has(p)) families.set(p, rotator.family(p))
    return families.get(p)
  }
  familyOf(provider) // throws for a destroyed rotator
  return async function fetchWithRotation(input, init) {
    const request = new Request(input, init)
    // The body is sent once per attempt, so it is read once here. Requests to AI providers
    // are JSON of bounded size; responses, which can stream, are never buffered.
    const body = request.body ? await request.arrayBuffer() : undefined
    const signal = request.signal
    try {
      return await rotator.execute({ ...plan, provider, fallback }, (attempt) => {
        const url = new URL(request.url)
        const target = retarget(url, provider, attempt.provider, baseURL)
        const headers = new Headers(request.headers)
        for (const h of AUTH_HEADERS) headers.delete(h)
        ;(DIALECTS[familyOf(attempt.provider)] ?? bearer)(headers, attempt.key, target)
        return baseFetch(target, {
          method: request.method,
          headers,
          body,
          signal,
          redirect: request.redirect,
        })
      })
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error
      if (!(error instanceof KeyRotatorError)) throw error
      // Attempts used up on server errors: the provider's last answer is the caller's to
      // read, as if there had been no rotator.
      if (error.code === 'ERR_ATTEMPTS_EXHAUSTED' && error.response instanceof Response) {
        return error.response
      }
      if (error.code === 'ERR_ATTEMPTS_EXHAUSTED' && error.cause !== undefined) throw error.cause
      throw error
    }
  }
}

function retarget(url, primary, provider, baseURL) {
  if (provider === primary || baseURL[provider] == null || baseURL[primary] == null) return url
  const from = String(baseURL[primary]).replace(/\/+$/, '')
  if (!url.href.startsWith(from)) return url
  return new URL(String(baseURL[provider]).replace(/\/+$/, '') + url.href.slice(from.length))
}

module.exports = { rotatingFetch }
