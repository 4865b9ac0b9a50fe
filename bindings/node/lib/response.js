'use strict'

/**
 * What the core's classifier reads from a provider's answer: the status, the headers and,
 * for an answer that is not a success, the body's text. Accepts a WHATWG `Response` (from
 * `fetch`) or `{ status, headers, body }`. A `Response`'s body is read from a clone and only
 * when it is an error, so a successful (possibly streaming) body is left untouched for the
 * caller.
 */
async function describe(response) {
  if (response == null || typeof response !== 'object' || typeof response.status !== 'number') {
    throw new TypeError('expected a Response or { status, headers, body }')
  }
  const status = response.status
  const headers = headerPairs(response.headers)
  const success = status >= 200 && status < 300
  let body
  if (!success) {
    if (typeof Response !== 'undefined' && response instanceof Response) {
      body = response.bodyUsed ? undefined : await response.clone().text()
    } else {
      body = bodyText(response.body)
    }
  }
  return { status, headers, body }
}

function headerPairs(headers) {
  if (headers == null) return []
  if (typeof headers.entries === 'function' && !Array.isArray(headers)) {
    return Array.from(headers.entries(), ([k, v]) => [String(k), String(v)])
  }
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)])
  return Object.entries(headers).flatMap(([k, v]) =>
    Array.isArray(v) ? v.map((x) => [k, String(x)]) : v == null ? [] : [[k, String(v)]])
}

function bodyText(body) {
  if (body == null) return undefined
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) return Buffer.from(body).toString('utf8')
  return JSON.stringify(body)
}

module.exports = { describe }
