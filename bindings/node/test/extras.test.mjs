// Beyond the original: cooldown policies, scopes, strategies, budgets, sessions, reportResponse,
// leases and execute. Time moves with a fake clock; nothing sleeps.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AIKeyRotator, KeyRotatorError } from '@ai-key-rotator/node'
import { record } from './helpers.mjs'

// 2026-03-07 18:00 UTC, a Saturday; the next day US clocks move forward (DST starts).
const START = Date.UTC(2026, 2, 7, 18, 0, 0)
const rotator = (providers) => new AIKeyRotator({ providers, clock: { fake: START }, resetIntervalMs: 0 })
const untilOf = (r, provider, i = 0) => r.getStatus(provider).credentials[i].until

test('cooldown policies, table-driven: when a marked key comes back', () => {
  const cases = [
    [{ type: 'fixed', durationMs: 1500 }, START + 1500],
    [{ type: 'midnight-utc' }, Date.UTC(2026, 2, 8)],
    [undefined, Date.UTC(2026, 2, 8)],
    // Midnight in Los Angeles is 08:00 UTC in winter (PST, -8).
    [{ type: 'daily-at', timeZone: 'America/Los_Angeles' }, Date.UTC(2026, 2, 8, 8)],
    [{ type: 'daily-at', at: '17:30', timeZone: 'UTC' }, Date.UTC(2026, 2, 8, 17, 30)],
    [{ type: 'monthly' }, Date.UTC(2026, 3, 1)],
    [{ type: 'monthly', day: 31, timeZone: 'UTC' }, Date.UTC(2026, 2, 31)],
    [{ type: 'exponential', baseMs: 1000, factor: 2, maxMs: 60_000, jitter: false }, START + 1000],
    [{ type: 'from-response', fallback: { type: 'fixed', durationMs: 5000 }, capMs: 3_600_000 }, START + 5000],
  ]
  const failures = []
  for (const [cooldown, expected] of cases) {
    const r = rotator({ p: { credentials: [{ key: 'k1' }, { key: 'k2' }], cooldown } })
    r.markExhausted('p', 'k1')
    const got = untilOf(r, 'p')
    if (got !== expected) failures.push(`${JSON.stringify(cooldown)}: ${new Date(got).toISOString()} != ${new Date(expected).toISOString()}`)
    r.destroy()
  }
  assert.deepEqual(failures, [])
})

test('exponential cooldowns grow with failures in a row and a success resets them', async () => {
  const r = rotator({ p: { credentials: [{ key: 'k1' }], cooldown: { type: 'exponential', baseMs: 1000, factor: 2, maxMs: 3000, jitter: false } } })
  const waits = []
  for (let i = 0; i < 3; i++) {
    r.markExhausted('p', 'k1')
    waits.push(untilOf(r, 'p') - r.now())
    r.advanceClock(untilOf(r, 'p') - r.now())
  }
  assert.deepEqual(waits, [1000, 2000, 3000])
  await r.reportResponse(r.getKey('p'), { status: 200, headers: {} })
  r.markExhausted('p', 'k1')
  assert.equal(untilOf(r, 'p') - r.now(), 1000)
  r.destroy()
})

test('reportResponse reads a WHATWG Response: rate limit until the provider says, invalid key disabled', async () => {
  const r = rotator({ openai: { credentials: [{ key: 'sk-a' }, { key: 'sk-b' }, { key: 'sk-c' }] } })
  const events = record(r, ['exhausted', 'disabled'])
  const limited = new Response(JSON.stringify({ error: { type: 'requests', code: 'rate_limit_exceeded', message: 'Rate limit reached. Please try again in 3.202s.' } }), {
    status: 429,
    headers: { 'content-type': 'application/json', 'x-ratelimit-reset-requests': '3.202s' },
  })
  const verdict = await r.reportResponse(r.getKey('openai'), limited)
  assert.equal(verdict.kind, 'rate-limited')
  assert.equal(verdict.until, START + 3202)
  assert.equal(untilOf(r, 'openai'), START + 3202)
  assert.equal(r.getKey('openai').key, 'sk-b')

  const invalid = await r.reportResponse(r.getKey('openai'), { status: 401, headers: { 'content-type': 'application/json' }, body: { error: { code: 'invalid_api_key', message: 'Incorrect API key provided' } } })
  assert.equal(invalid.kind, 'invalid-key')
  assert.equal(r.getStatus('openai').credentials[1].state, 'disabled')
  assert.equal(r.getKey('openai').key, 'sk-c')
  assert.deepEqual(events.map((e) => e[0]), ['exhausted', 'disabled'])

  const ok = await r.reportResponse(r.getKey('openai'), new Response('{}', { status: 200 }))
  assert.equal(ok.kind, 'ok')
  assert.equal(r.enable('openai', 'sk-b'), true)
  assert.equal(r.disable('openai', 'sk-b'), true)
  await assert.rejects(r.reportResponse({ key: 'sk-a' }, { status: 200 }), { code: 'ERR_INVALID_ARG' })
  r.destroy()
})

test('a limit shared by a quota scope cools every key of the scope', async () => {
  const r = rotator({
    gemini: {
      credentials: [{ key: 'g1', scope: 'project-a' }, { key: 'g2', scope: 'project-a' }, { key: 'g3', scope: 'project-b' }],
      cooldown: { type: 'fixed', durationMs: 60_000 },
    },
  })
  const scoped = record(r, ['scopeExhausted'])
  const body = { error: { code: 429, status: 'RESOURCE_EXHAUSTED', message: 'Quota exceeded for quota metric', details: [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' }] }] } }
  const verdict = await r.reportResponse(r.getKey('gemini'), { status: 429, headers: { 'content-type': 'application/json' }, body })
  assert.equal(verdict.kind, 'quota-exhausted')
  assert.deepEqual(r.getStatus('gemini').credentials.map((c) => c.state), ['cooling', 'cooling', 'available'])
  assert.equal(r.getKey('gemini').key, 'g3')
  assert.equal(scoped.length, 1)
  assert.equal(scoped[0][2], 'project-a')
  r.destroy()
})

test('strategies: round-robin and weighted spread the load', () => {
  const rr = rotator({ p: { credentials: [{ key: 'a' }, { key: 'b' }, { key: 'c' }], strategy: 'round-robin' } })
  assert.deepEqual([1, 2, 3, 4].map(() => rr.getKey('p').key), ['a', 'b', 'c', 'a'])
  rr.destroy()
  const w = rotator({ p: { credentials: [{ key: 'a', weight: 3 }, { key: 'b', weight: 1 }], strategy: 'weighted' } })
  const counts = { a: 0, b: 0 }
  for (let i = 0; i < 400; i++) counts[w.getKey('p').key]++
  assert.equal(counts.a + counts.b, 400)
  assert.ok(counts.a > counts.b, JSON.stringify(counts))
  w.destroy()
  assert.throws(() => rotator({ p: { credentials: [{ key: 'a', weight: 0 }], strategy: 'weighted' } }), { code: 'ERR_INVALID_CONFIG' })
})

test('leases: in flight until reported; a budget refuses with the exact time it has room', async () => {
  const r = rotator({ p: { credentials: [{ key: 'a' }], budget: { requestsPerMinute: 2, maxInFlight: 1 } } })
  const first = r.acquire('p')
  assert.equal(first.key, 'a')
  assert.equal(first.provider, 'p')
  assert.throws(() => r.acquire('p'), (e) => e instanceof KeyRotatorError && e.code === 'ERR_NO_KEY_AVAILABLE')
  first.success(10)
  assert.throws(() => first.success(), { code: 'ERR_LEASE_ENDED' })
  const second = r.acquire('p')
  const verdict = await second.reportResponse({ status: 200 })
  assert.equal(verdict.kind, 'ok')
  // Two requests in this minute: the next one fits when the first has drained (GCRA: 30 s).
  let refusal
  try {
    r.acquire('p')
  } catch (e) {
    refusal = e
  }
  assert.equal(refusal.code, 'ERR_NO_KEY_AVAILABLE')
  assert.equal(refusal.retryAt, START + 30_000)
  assert.equal(refusal.retryAfter, 30)
  r.advanceClock(30_000)
  r.acquire('p').release()
  assert.throws(() => r.acquire('nope'), { code: 'ERR_UNKNOWN_PROVIDER' })
  r.destroy()
})

test('session affinity keeps a conversation on one key', () => {
  const r = rotator({ p: { credentials: [{ key: 'a' }, { key: 'b' }, { key: 'c' }], strategy: 'round-robin' } })
  const keys = new Set()
  for (let i = 0; i < 5; i++) {
    const lease = r.acquire('p', { session: 'conversation-42' })
    keys.add(lease.key)
    lease.success()
  }
  assert.equal(keys.size, 1)
  r.destroy()
})

test('execute: fails over past a blamed key, falls back to the next provider, returns the value', async () => {
  const r = rotator({
    openai: { credentials: [{ key: 'sk-limited' }, { key: 'sk-bad' }] },
    anthropic: { credentials: [{ key: 'sk-ant' }] },
  })
  const seen = []
  const answer = await r.execute({ provider: 'openai', fallback: 'anthropic' }, async (attempt) => {
    seen.push(`${attempt.number}:${attempt.provider}:${attempt.key}`)
    if (attempt.key === 'sk-limited') return { status: 429, headers: { 'retry-after': '20' }, body: '{"error":{"code":"rate_limit_exceeded"}}' }
    if (attempt.key === 'sk-bad') return new Response('{"error":{"code":"invalid_api_key"}}', { status: 401 })
    return new Response('answered', { status: 200 })
  })
  assert.equal(await answer.text(), 'answered')
  assert.deepEqual(seen, ['1:openai:sk-limited', '2:openai:sk-bad', '3:anthropic:sk-ant'])
  assert.deepEqual(r.getStatus('openai').credentials.map((c) => c.state), ['cooling', 'disabled'])

  // Nothing left anywhere: rejected at once with when to retry.
  r.markExhausted('anthropic')
  const error = await r.execute('openai', () => ({ status: 200 })).catch((e) => e)
  assert.equal(error.code, 'ERR_NO_KEY_AVAILABLE')
  assert.equal(error.retryAt, START + 20_000)
  r.destroy()
})

test('execute: a thrown error is a transport failure; attempts run out with it as the cause', async () => {
  const r = rotator({ p: { credentials: [{ key: 'a' }, { key: 'b' }] } })
  const boom = new Error('connection reset')
  const error = await r.execute({ provider: 'p', maxAttempts: 2, backoffBaseMs: 1, backoffMaxMs: 1 }, () => { throw boom }).catch((e) => e)
  assert.equal(error.code, 'ERR_ATTEMPTS_EXHAUSTED')
  assert.equal(error.cause, boom)
  assert.equal(error.attempts.length, 2)
  // A client error is the request's fault: returned at once, no key blamed.
  const bad = await r.execute('p', () => ({ status: 400, body: '{"error":{"message":"bad request"}}' }))
  assert.equal(bad.status, 400)
  assert.equal(r.getStatus('p').available, 2)
  r.destroy()
})

test('execute: an attempt over its time limit is given up (its signal aborts) and retried', async () => {
  const r = new AIKeyRotator({ providers: { p: { credentials: [{ key: 'a' }] } }, resetIntervalMs: 0 })
  let slowSignal
  const answer = await r.execute({ provider: 'p', attemptTimeoutMs: 50, backoffBaseMs: 1, backoffMaxMs: 1 }, (attempt) => {
    if (attempt.number === 1) {
      slowSignal = attempt.signal
      // Never answers by itself; settles only when aborted.
      return new Promise((_, reject) => attempt.signal.addEventListener('abort', () => reject(attempt.signal.reason)))
    }
    return { status: 200, body: `attempt ${attempt.number}` }
  })
  assert.equal(answer.body, 'attempt 2')
  // A timeout says nothing about the key: it stays available.
  assert.equal(r.getStatus('p').available, 1)
  assert.equal(slowSignal.aborted, true)
  assert.equal(slowSignal.reason.code, 'ERR_ATTEMPT_TIMEOUT')
  r.destroy()
})

test('execute: with a deadline it waits for a key that comes back before it', async () => {
  const r = new AIKeyRotator({ providers: { p: { credentials: [{ key: 'a' }], cooldown: { type: 'fixed', durationMs: 30 } } }, resetIntervalMs: 0 })
  r.markExhausted('p')
  const keys = []
  const answer = await r.execute({ provider: 'p', deadlineMs: 60_000 }, (attempt) => {
    keys.push(attempt.key)
    return { status: 200 }
  })
  assert.equal(answer.status, 200)
  assert.deepEqual(keys, ['a'])
  const none = await r.execute({ provider: 'p' }, () => ({ status: 429, headers: { 'retry-after': '600' } })).catch((e) => e)
  assert.equal(none.code, 'ERR_NO_KEY_AVAILABLE')
  const late = await r.execute({ provider: 'p', deadlineMs: 50 }, () => ({ status: 200 })).catch((e) => e)
  assert.ok(['ERR_NO_KEY_AVAILABLE', 'ERR_DEADLINE_EXCEEDED'].includes(late.code), late.code)
  r.destroy()
})
