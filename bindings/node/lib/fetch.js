'use strict'

const { KeyRotatorError } = require('./errors.js')
const { PreparedPlan } = require('./rotator.js')

/**
 * How each provider family takes its key. The SDK's own key (say `apiKey: "unused"`) is
 * replaced, whichever header it used.
 */
const AUTH_HEADERS = new Set(['authorization', 'x-api-key', 'api-key', 'x-goog-api-key'])
const DIALECTS = {
  anthropic: (headers, key) => { headers['x-api-key'] = key },
  'azure-openai': (headers, key) => { headers['api-key'] = key },
  gemini: (headers, key) => { headers['x-goog-api-key'] = key },
}
const bearer = (headers, key) => { headers.authorization = `Bearer ${key}` }

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
  const prepared = new PreparedPlan({ ...plan, provider, fallback })
  return async function fetchWithRotation(input, init) {
    const request = await replayable(input, init)
    const signal = request.signal
    // The caller's headers once, as a plain object without any credential: each attempt
    // copies it and adds its key (a `Headers` per attempt cost more than the rest).
    const base = {}
    forEachHeader(request.headers, (name, value) => {
      const lower = name.toLowerCase()
      if (!AUTH_HEADERS.has(lower)) base[lower] = value
    })
    try {
      return await rotator.execute(prepared, (attempt) => {
        const family = familyOf(attempt.provider)
        const url = family === 'gemini' || attempt.provider !== provider
          ? target(request.url, provider, attempt.provider, baseURL, family)
          : request.url
        const headers = { ...base }
        ;(DIALECTS[family] ?? bearer)(headers, attempt.key)
        // The attempt's signal aborts it when the loop gives up on it (its time limit).
        const attemptSignal = signal ? AbortSignal.any([signal, attempt.signal]) : attempt.signal
        return baseFetch(url, { ...request.init, headers, body: request.body, signal: attemptSignal })
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

/**
 * The parts of a request that each attempt sends again. The body is sent once per attempt, so
 * a stream is read once here; a string or bytes (what the SDKs send) is kept as it is, without
 * building a `Request`. Requests to AI providers are JSON of bounded size; responses, which can
 * stream, are never buffered.
 */
async function replayable(input, init = {}) {
  const plainBody = init.body == null || typeof init.body === 'string' || init.body instanceof ArrayBuffer || ArrayBuffer.isView(init.body)
  if (!(input instanceof Request) && plainBody) {
    const { headers, body, signal, ...rest } = init
    return { url: String(input), init: rest, headers: headers ?? {}, body: body ?? undefined, signal: signal ?? undefined }
  }
  const request = new Request(input, init)
  return {
    url: request.url,
    init: { method: request.method, redirect: request.redirect },
    headers: request.headers,
    body: request.body ? await request.arrayBuffer() : undefined,
    signal: request.signal,
  }
}

function forEachHeader(headers, fn) {
  if (headers == null) return
  if (typeof headers.forEach === 'function' && !Array.isArray(headers)) headers.forEach((v, k) => fn(k, v))
  else for (const [k, v] of Array.isArray(headers) ? headers : Object.entries(headers)) if (v != null) fn(k, String(v))
}

/** The URL for an attempt: a fallback provider's own server, and no key in a Gemini query. */
function target(href, primary, provider, baseURL, family) {
  let url = new URL(href)
  if (provider !== primary && baseURL[provider] != null && baseURL[primary] != null) {
    const from = String(baseURL[primary]).replace(/\/+$/, '')
    if (url.href.startsWith(from)) url = new URL(String(baseURL[provider]).replace(/\/+$/, '') + url.href.slice(from.length))
  }
  if (family === 'gemini') url.searchParams.delete('key')
  return url
}

module.exports = { rotatingFetch }
