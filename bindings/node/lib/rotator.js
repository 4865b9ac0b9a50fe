'use strict'

const { EventEmitter } = require('node:events')
const { NativeRotator, getKeyAt } = require('../native/binding.js')
const { KeyRotatorError, native, fromNative } = require('./errors.js')
const { describe } = require('./response.js')

/** Events the core emits, by the core's name: how each becomes a Node event. */
const EVENTS = {
  exhausted: (e) => ['exhausted', e.provider, info(e.credential, { until: e.until })],
  rotated: (e) => ['rotated', e.provider, info(e.to), e.from ? info(e.from) : null],
  'all-exhausted': (e) => ['allExhausted', e.provider, e.until ?? null],
  reset: (e) => ['reset', e.provider, e.credentials.length, e.credentials.map((c) => info(c))],
  'scope-exhausted': (e) => ['scopeExhausted', e.provider, e.scope, e.credentials.map((c) => info(c)), e.until],
  disabled: (e) => ['disabled', e.provider, info(e.credential), e.reason],
  enabled: (e) => ['enabled', e.provider, info(e.credential)],
  remote: (e) => ['remote', e.change],
}
const NODE_EVENTS = new Set(Object.values(EVENTS).map((f) => f({ credential: {}, to: {}, credentials: [] })[0]))

/** How events name a credential: its label and fingerprint, never its key. */
function info(credential, extra) {
  return { label: credential.label ?? null, fingerprint: credential.fingerprint, ...extra }
}

/**
 * Rotates API keys across AI providers: the original `ai-key-rotator` API on the Rust core.
 *
 * @example
 * const rotator = new AIKeyRotator({ providers: { openai: { credentials: [{ key: 'sk-1' }] } } })
 * rotator.getKey('openai').key // 'sk-1'
 */
class AIKeyRotator extends EventEmitter {
  #native
  /** The native `getKey` table's slot for this rotator. */
  #slot
  #persistence
  /** Provider name → the native index `getKeyAt` takes. */
  #providerIndex = new Map()
  /** Handle → the credential object `getKey` returns, built once per credential. */
  #credentials = []
  /** Handle → `{ provider, fingerprint }` of the credential. */
  #origins = []
  /** Credential object → handle, for `reportResponse` and `markCredentialExhausted`. */
  #handles = new WeakMap()
  #subscribed = false
  #destroyed = false

  constructor(config) {
    super()
    if (config == null || typeof config !== 'object') {
      throw new KeyRotatorError('ERR_INVALID_CONFIG', 'the configuration must be an object')
    }
    const { providers, persistence, ...rest } = config
    if (providers == null || typeof providers !== 'object' || Array.isArray(providers)) {
      throw new KeyRotatorError('ERR_INVALID_CONFIG', '`providers` must be an object of provider name → configuration')
    }
    if (persistence != null && (typeof persistence.save !== 'function' || typeof persistence.load !== 'function')) {
      throw new KeyRotatorError('ERR_INVALID_CONFIG', '`persistence` must have `save(state)` and `load()` functions')
    }
    this.#persistence = persistence ?? null
    this.#native = native(() => new NativeRotator(JSON.stringify({ ...rest, providers: Object.entries(providers) })))
    this.#slot = this.#native.slot()
    // Events cost nothing until someone listens: the native subscription starts with the
    // first listener of one of the rotator's events.
    this.on('newListener', (name) => {
      if (!this.#subscribed && NODE_EVENTS.has(name)) this.#subscribe()
    })
  }

  #subscribe() {
    this.#subscribed = true
    // The native side holds this function; it reaches the rotator through a weak reference
    // so that a rotator nobody uses any more can be collected (and its native thread end).
    const self = new WeakRef(this)
    native(() => this.#native.subscribe(() => self.deref()?.#drain()))
  }

  /** Emits every queued event; called after each call that can change state. */
  #drain() {
    let events
    try {
      events = this.#native.drainEvents()
    } catch {
      return // destroyed
    }
    for (const event of events) {
      const make = EVENTS[event.event]
      if (make) this.emit(...make(event))
    }
  }

  /** A native call that can change state: its events are emitted before it returns. */
  #call(fn) {
    try {
      return native(fn)
    } finally {
      if (this.#subscribed) this.#drain()
    }
  }

  /** An available credential of `provider` (`{ key, label, meta }`), or `null`. */
  getKey(provider) {
    if (this.#destroyed) throw destroyedError()
    let p = this.#providerIndex.get(provider)
    if (p === undefined) p = this.#indexOf(provider)
    if (p < 0) return null
    const h = getKeyAt(this.#slot, p)
    if (this.#subscribed) this.#drain()
    if (h < 0) return null
    return this.#credentials[h] ?? this.#credential(h)
  }

  #indexOf(provider) {
    const p = native(() => this.#native.providerIndex(String(provider)))
    if (p >= 0) this.#providerIndex.set(provider, p)
    return p
  }

  #credential(h) {
    const c = native(() => this.#native.credentialAt(h))
    const credential = Object.freeze({ key: c.key, label: c.label ?? undefined, meta: c.meta ?? undefined })
    this.#credentials[h] = credential
    this.#origins[h] = { provider: c.provider, fingerprint: c.fingerprint }
    this.#handles.set(credential, h)
    return credential
  }

  /** Starts an attempt; `settled` resolves (never rejects) to what `#deliver` answers with. */
  #start(h, id, fn, values) {
    const controller = new AbortController()
    const settled = (async () => {
      try {
        const value = await fn(this.#attempt(h, id + 1, controller.signal))
        values.set(id, { value })
        return { id, ...(await describe(value)) }
      } catch (error) {
        values.set(id, { error })
        return { id, failed: true }
      }
    })()
    return { id, controller, settled }
  }

  #deliver(run, answer) {
    if (answer.failed) run.fail(answer.id)
    else run.answer(answer.id, answer.status, answer.headers, answer.body ?? null)
  }

  /** What `execute` hands its function for an attempt with the credential of handle `h`. */
  #attempt(h, number, signal) {
    const c = this.#credentials[h] ?? this.#credential(h)
    const { provider, fingerprint } = this.#origins[h]
    return Object.freeze({ number, provider, key: c.key, label: c.label, fingerprint, meta: c.meta, signal })
  }

  /** Marks `key` (or the current credential) exhausted and rotates; `true` if one was marked. */
  markExhausted(provider, key) {
    return this.#call(() => this.#native.markExhausted(String(provider), key ?? null))
  }

  /** Marks a credential that `getKey` returned exhausted, whichever is current now. */
  markCredentialExhausted(credential) {
    return this.#call(() => this.#native.markHandleExhausted(this.#handleOf(credential)))
  }

  rotateNext(provider) {
    return this.#call(() => this.#native.rotateNext(String(provider)))
  }

  hasAvailable(provider) {
    return this.#call(() => this.#native.hasAvailable(String(provider)))
  }

  /** Every provider's status by name, or one provider's (`null` for an unknown provider). */
  getStatus(provider) {
    return native(() => this.#native.status(provider == null ? null : String(provider)))
  }

  getProviders() {
    return native(() => this.#native.providers())
  }

  addCredential(provider, credential) {
    this.#call(() => this.#native.addCredential(String(provider), JSON.stringify(credential ?? null)))
  }

  /** Removes the credential whose key is `key`; `true` if there was one. */
  removeCredential(provider, key) {
    return this.#call(() => this.#native.removeCredential(String(provider), String(key)))
  }

  addProvider(name, config) {
    this.#call(() => this.#native.addProvider(String(name), JSON.stringify(config ?? null)))
    this.#providerIndex.delete(name)
  }

  /** Ends every running cooldown (of `provider`, or all); returns how many keys came back. */
  resetAll(provider) {
    return this.#call(() => this.#native.resetAll(provider == null ? null : String(provider)))
  }

  /** Disables a key until `enable`d (as an invalid-key answer does). */
  disable(provider, key) {
    return this.#call(() => this.#native.disable(String(provider), String(key)))
  }

  enable(provider, key) {
    return this.#call(() => this.#native.enable(String(provider), String(key)))
  }

  /** Saves the state (fingerprints, labels and times, never a key) through `persistence`. */
  async save() {
    const state = native(() => this.#native.exportState())
    if (this.#persistence) await this.#persistence.save(state)
  }

  /** Restores saved state; `false` when there is no persistence or nothing was saved. */
  async load() {
    native(() => this.#native.providers()) // throws once destroyed
    if (!this.#persistence) return false
    const state = await this.#persistence.load()
    if (state == null) return false
    this.#call(() => this.#native.importState(String(state)))
    return true
  }

  /**
   * Applies what a provider answered to a request made with `credential` (from `getKey`):
   * cools it until the provider's reset on a rate limit, disables it on an invalid key, and so
   * on. `response` is a `Response` or `{ status, headers, body }`. Resolves to the verdict.
   */
  async reportResponse(credential, response) {
    const h = this.#handleOf(credential)
    const { status, headers, body } = await describe(response)
    return this.#call(() => this.#native.reportResponse(h, status, headers, body ?? null))
  }

  #handleOf(credential) {
    const h = this.#handles.get(credential)
    if (h === undefined) {
      throw new KeyRotatorError('ERR_INVALID_ARG', 'expected a credential returned by getKey')
    }
    return h
  }

  /**
   * A lease on an available credential for one request, counted in flight until reported
   * or released. Throws `ERR_NO_KEY_AVAILABLE` with `retryAt` when no key is available.
   */
  acquire(provider, options = {}) {
    const lease = native(() => this.#native.acquire(String(provider), options.session ?? null, options.tokens ?? null))
    if (!(typeof lease.info === 'function')) {
      throw new KeyRotatorError(lease.code, lease.message, { retryAt: lease.retryAt, now: this.now() })
    }
    const h = lease.handle()
    const c = h >= 0 ? (this.#credentials[h] ?? this.#credential(h)) : null
    const origin = c ? this.#origins[h] : null
    const info = c ? { key: c.key, label: c.label, meta: c.meta, provider: origin.provider, fingerprint: origin.fingerprint } : lease.info()
    return new Lease(lease, info, () => { if (this.#subscribed) this.#drain() })
  }

  /**
   * Runs `fn(attempt)` with failover: `attempt` carries the key to use (`attempt.key`) and
   * its provider; `fn` returns the provider's answer (a `Response` or `{ status, headers,
   * body }`). Keys the answer blames are cooled or disabled and the next key (or the next
   * provider of `plan.fallback`) is tried, server errors are retried after a backoff, all by
   * the core's loop. Resolves to what `fn` returned for the first success (or for an error
   * that is the request's own fault); rejects with a `KeyRotatorError` otherwise.
   */
  async execute(plan, fn) {
    if (typeof fn !== 'function') throw new TypeError('execute(plan, fn): fn must be a function')
    const values = new Map()
    let next = 0
    // The core's loop is polled here, on this thread (see src/execute.rs): it asks for an
    // attempt, is answered, and asks again or finishes; it waits on a timer only for a backoff
    // or a key coming back, and then rings.
    let wake = null
    const ring = () => {
      const w = wake
      wake = null
      w?.()
    }
    const prepared = plan instanceof PreparedPlan ? plan : new PreparedPlan(plan)
    const run = native(() => this.#native.execute(prepared.json))
    let outcome
    let running = null // the attempt in flight: { id, controller, settled }
    try {
      for (;;) {
        const h = run.poll()
        if (h === -1) {
          outcome = run.outcome()
          running?.controller.abort(new KeyRotatorError('ERR_DEADLINE_EXCEEDED', 'the deadline passed'))
          break
        }
        if (h < -2) throw destroyedError()
        if (h >= 0) {
          // A new attempt; one still running was given up by the loop (timed out).
          running?.controller.abort(new KeyRotatorError('ERR_ATTEMPT_TIMEOUT', 'the attempt took longer than its time limit'))
          running = this.#start(h, next++, fn, values)
          // Without a time limit nothing but the answer can move the loop on: wait for it
          // without arming a ring (the common, cheapest path).
          if (!prepared.timed) {
            this.#deliver(run, await running.settled)
            running = null
            continue
          }
        }
        if (run.arm(ring)) continue
        const rung = new Promise((resolve) => { wake = resolve })
        if (running) {
          const settled = await Promise.race([running.settled, rung])
          if (settled !== undefined) {
            this.#deliver(run, settled)
            running = null
          }
        } else {
          await rung
        }
      }
    } catch (e) {
      running?.controller.abort(e)
      throw e
    } finally {
      run.close()
    }
    if (this.#subscribed) this.#drain()
    if (typeof outcome === 'number') {
      for (const [id, v] of values) if (id !== outcome) discard(v.value)
      return values.get(outcome).value
    }
    const keep = outcome.lastId
    for (const [id, v] of values) if (id !== keep) discard(v.value)
    const last = outcome.lastId == null ? undefined : values.get(outcome.lastId)
    throw new KeyRotatorError(outcome.code, outcome.message, {
      retryAt: outcome.retryAt,
      now: this.now(),
      attempts: outcome.attempts,
      cause: last?.error,
      response: last?.value,
    })
  }

  /** A `fetch` that rotates keys for `provider`: see `lib/fetch.js`. */
  fetch(provider, options) {
    return require('./fetch.js').rotatingFetch(this, provider, options)
  }

  /** The family whose responses `provider` sends (`openai`, `anthropic`, `gemini`, …). */
  family(provider) {
    return native(() => this.#native.family(String(provider)))
  }

  /** The rotator's clock, Unix milliseconds. */
  now() {
    return native(() => this.#native.now())
  }

  /** Moves a fake clock (`clock: { fake: startMs }`) forward, for tests. */
  advanceClock(ms) {
    native(() => this.#native.advanceClock(ms))
  }

  /** Waits until the store (`store` option) has written every change. */
  flushStore() {
    native(() => this.#native.flushStore())
  }

  /** Why the store's state could not be loaded at start (it started fresh), or `null`. */
  storeError() {
    return native(() => this.#native.storeError())
  }

  /** Stops the background check; every later call throws `ERR_ROTATOR_DESTROYED`. */
  destroy() {
    this.#native.destroy()
    this.#destroyed = true
    this.#credentials = []
    this.#origins = []
  }
}

/** A credential held for one request. */
class Lease {
  #native
  #after
  constructor(nativeLease, c, after) {
    this.#native = nativeLease
    this.#after = after
    this.key = c.key
    this.label = c.label ?? undefined
    this.meta = c.meta ?? undefined
    this.provider = c.provider
    this.fingerprint = c.fingerprint
    Object.freeze(this)
  }

  /** Classifies and reports the provider's answer, ends the lease, resolves to the verdict. */
  async reportResponse(response) {
    const { status, headers, body } = await describe(response)
    try {
      return native(() => this.#native.reportResponse(status, headers, body ?? null))
    } finally {
      this.#after()
    }
  }

  /** Reports a success (with the tokens really used, if known) and ends the lease. */
  success(tokensUsed) {
    try {
      native(() => this.#native.success(tokensUsed ?? null))
    } finally {
      this.#after()
    }
  }

  /** Ends the lease without a report. */
  release() {
    this.#native.release()
  }
}

function destroyedError() {
  return new KeyRotatorError('ERR_ROTATOR_DESTROYED', 'the rotator was destroyed: create a new AIKeyRotator')
}

/** A plan serialized once, for a caller that runs it many times (the fetch adapter). */
class PreparedPlan {
  constructor(plan) {
    const p = toPlan(plan)
    this.json = JSON.stringify(p)
    // Whether a timer can end an attempt: then the loop is polled when it fires.
    this.timed = p.attemptTimeoutMs != null || p.deadlineMs != null
  }
}

function toPlan(plan) {
  if (typeof plan === 'string') return { providers: [plan] }
  if (plan == null || typeof plan.provider !== 'string') {
    throw new KeyRotatorError('ERR_INVALID_ARG', 'a plan is a provider name or { provider, fallback?, … }')
  }
  const { provider, fallback, ...rest } = plan
  const fallbacks = fallback == null ? [] : Array.isArray(fallback) ? fallback : [fallback]
  return { ...rest, providers: [provider, ...fallbacks] }
}

/** Frees the connection of a response that will not be read. */
function discard(value) {
  if (typeof Response !== 'undefined' && value instanceof Response && !value.bodyUsed) {
    value.body?.cancel().catch(() => {})
  }
}

module.exports = { AIKeyRotator, Lease, PreparedPlan, fromNative }
