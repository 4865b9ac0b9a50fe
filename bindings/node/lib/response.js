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

/** Headers as one flat array, `[name, value, name, value, …]`. */
function headerPairs(headers) {
  const out = []
  if (headers == null) return out
  if (typeof headers.forEach === 'function' && !Array.isArray(headers) && !(headers instanceof Map)) {
    headers.forEach((v, k) => out.push(String(k), String(v)))
    return out
  }
  const entries = Array.isArray(headers) ? headers : headers instanceof Map ? [...headers] : Object.entries(headers)
  for (const [k, v] of entries) {
    if (Array.isArray(v)) for (const x of v) out.push(String(k), String(x))
    else if (v != null) out.push(String(k), String(v))
  }
  return out
}

function bodyText(body) {
  if (body == null) return undefined
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) return Buffer.from(body).toString('utf8')
  return JSON.stringify(body)
}

module.exports = { describe }
