'use strict'

/**
 * The errors this package throws: an `Error` with a string `code`, and for "no key available"
 * the exact time a key is back (`retryAt`, Unix milliseconds) and the wait in whole seconds
 * (`retryAfter`, as an HTTP `retry-after` header would say it).
 */
class KeyRotatorError extends Error {
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'KeyRotatorError'
    this.code = code
    if ('retryAt' in details) {
      this.retryAt = details.retryAt ?? null
      this.retryAfter = details.retryAt == null
        ? null
        : Math.max(0, Math.ceil((details.retryAt - (details.now ?? Date.now())) / 1000))
    }
    if (details.attempts !== undefined) this.attempts = details.attempts
    if (details.response !== undefined) this.response = details.response
  }
}

/** Runs a native call, giving errors from the native layer this package's error class. */
function native(fn) {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

function fromNative(e) {
  if (e instanceof KeyRotatorError || !(e instanceof Error) || typeof e.code !== 'string' || !e.code.startsWith('ERR_')) {
    return e
  }
  return new KeyRotatorError(e.code, e.message)
}

module.exports = { KeyRotatorError, native, fromNative }
