// Every method and event of the original's API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { AIKeyRotator, KeyRotatorError } from '@ai-key-rotator/node'
import { record } from './helpers.mjs'

const START = Date.UTC(2026, 0, 1, 12, 0, 0)
const config = (extra = {}) => ({
  providers: {
    openai: {
      credentials: [{ key: 'sk-1', label: 'one' }, { key: 'sk-2', label: 'two' }, { key: 'sk-3' }],
      cooldown: { type: 'fixed', durationMs: 60_000 },
    },
    google: { credentials: [{ key: 'AIza-1', meta: { model: 'flash' } }] },
  },
  clock: { fake: START },
  resetIntervalMs: 0,
  ...extra,
})

test('getKey is fill-first and returns the same object until rotation; unknown provider gives null', () => {
  const r = new AIKeyRotator(config())
  const a = r.getKey('openai')
  assert.equal(a.key, 'sk-1')
  assert.equal(r.getKey('openai'), a)
  assert.equal(r.getKey('nope'), null)
  assert.deepEqual(r.getProviders(), ['openai', 'google'])
  r.destroy()
})

test('markExhausted with and without a key; rotateNext; hasAvailable; events', () => {
  const r = new AIKeyRotator(config())
  const seen = record(r, ['exhausted', 'rotated', 'allExhausted'])
  assert.equal(r.markExhausted('openai', 'sk-1'), true)
  assert.equal(r.getKey('openai').key, 'sk-2')
  assert.equal(r.markExhausted('openai', 'sk-unknown'), false)
  assert.equal(r.rotateNext('openai'), true)
  assert.equal(r.getKey('openai').key, 'sk-3')
  assert.equal(r.markExhausted('openai'), true) // the current one, sk-3
  assert.equal(r.hasAvailable('openai'), true)
  assert.equal(r.markExhausted('openai', 'sk-2'), true)
  assert.equal(r.hasAvailable('openai'), false)
  assert.equal(r.getKey('openai'), null)
  assert.equal(r.rotateNext('openai'), false)

  const names = seen.map((e) => e[0])
  assert.deepEqual(names.filter((n) => n === 'exhausted').length, 3)
  assert.equal(names.at(-1), 'allExhausted')
  const [, provider, credential] = seen[0]
  assert.equal(provider, 'openai')
  assert.equal(credential.label, 'one')
  assert.equal(credential.until, START + 60_000)
  assert.match(credential.fingerprint, /^[0-9a-f]{16}$/)
  const rotated = seen.find((e) => e[0] === 'rotated')
  assert.equal(rotated[2].label, 'two')
  assert.equal(seen.at(-1)[2], START + 60_000)
  r.destroy()
})

test('a cooldown ends exactly on time, with no background check needed', () => {
  const r = new AIKeyRotator(config())
  r.markExhausted('openai', 'sk-1')
  r.advanceClock(59_999)
  assert.equal(r.getStatus('openai').credentials[0].state, 'cooling')
  r.advanceClock(1)
  assert.equal(r.getStatus('openai').credentials[0].state, 'available')
  r.markExhausted('openai', 'sk-2')
  r.markExhausted('openai', 'sk-3')
  assert.equal(r.getKey('openai').key, 'sk-1')
  r.destroy()
})

test('resetAll for one provider and for all, with reset events and counts', () => {
  const r = new AIKeyRotator(config())
  const resets = record(r, ['reset'])
  r.markExhausted('openai', 'sk-1')
  r.markExhausted('openai', 'sk-2')
  r.markExhausted('google')
  assert.equal(r.resetAll('openai'), 2)
  assert.equal(r.getKey('google'), null)
  assert.equal(r.resetAll(), 1)
  assert.equal(r.getKey('google').key, 'AIza-1')
  assert.deepEqual(resets.map((e) => [e[1], e[2]]), [['openai', 2], ['google', 1]])
  r.destroy()
})

test('once and off', () => {
  const r = new AIKeyRotator(config())
  let onceCalls = 0
  let onCalls = 0
  const listener = () => onCalls++
  r.once('exhausted', () => onceCalls++)
  r.on('exhausted', listener)
  r.markExhausted('openai', 'sk-1')
  r.off('exhausted', listener)
  r.markExhausted('openai', 'sk-2')
  assert.equal(onceCalls, 1)
  assert.equal(onCalls, 1)
  r.destroy()
})

test('events from the background reset check arrive on the JS thread', async () => {
  const r = new AIKeyRotator({ ...config(), clock: undefined, resetIntervalMs: 20,
    providers: { p: { credentials: [{ key: 'k1' }], cooldown: { type: 'fixed', durationMs: 1 } } } })
  const reset = once(r, 'reset')
  r.markExhausted('p')
  // Keep the loop alive while waiting: the event delivery itself deliberately does not.
  const keepAlive = setInterval(() => {}, 1000)
  const [provider, count] = await reset
  clearInterval(keepAlive)
  assert.equal(provider, 'p')
  assert.equal(count, 1)
  r.destroy()
})

test('getStatus: the original counts plus ours, by provider', () => {
  const r = new AIKeyRotator(config())
  r.getKey('openai')
  r.markExhausted('openai', 'sk-1')
  const all = r.getStatus()
  assert.deepEqual(Object.keys(all), ['google', 'openai'].sort().length === 2 ? Object.keys(all) : [])
  const s = r.getStatus('openai')
  assert.equal(s.name, 'openai')
  assert.equal(s.total, 3)
  assert.equal(s.available, 2)
  assert.equal(s.exhausted, 1)
  assert.equal(s.current.label, 'two')
  const one = s.credentials[0]
  assert.equal(one.label, 'one')
  assert.equal(one.isExhausted, true)
  assert.equal(one.state, 'cooling')
  assert.equal(one.until, START + 60_000)
  assert.equal(one.timesUsed, 1)
  assert.equal(one.timesExhausted, 1)
  assert.equal(one.lastExhaustedAt, START)
  assert.equal(s.provider, 'openai')
  assert.equal(one.exhausted, true)
  assert.equal(one.exhaustedAt, START)
  assert.equal(one.resetAt, START + 60_000)
  assert.equal(s.credentials[1].exhausted, false)
  assert.equal(s.credentials[1].resetAt, null)
  assert.deepEqual(all.openai, s)
  assert.equal(r.getStatus('nope'), null)
  r.destroy()
})

test('addCredential, removeCredential, addProvider at runtime', () => {
  const r = new AIKeyRotator(config())
  r.addCredential('google', { key: 'AIza-2', label: 'second', meta: { tier: 2 } })
  r.markExhausted('google', 'AIza-1')
  assert.deepEqual({ ...r.getKey('google') }, { key: 'AIza-2', label: 'second', meta: { tier: 2 } })
  assert.equal(r.removeCredential('google', 'AIza-2'), true)
  assert.equal(r.removeCredential('google', 'AIza-2'), false)
  assert.equal(r.getKey('google'), null)
  r.addCredential('google', { key: 'AIza-2', label: 'again' })
  assert.equal(r.getKey('google').label, 'again')

  assert.equal(r.getKey('anthropic'), null)
  r.addProvider('anthropic', { credentials: [{ key: 'sk-ant-1' }], cooldown: { type: 'midnight-utc' } })
  assert.equal(r.getKey('anthropic').key, 'sk-ant-1')
  assert.deepEqual(r.getProviders(), ['openai', 'google', 'anthropic'])

  assert.throws(() => r.addCredential('nope', { key: 'x' }), { code: 'ERR_UNKNOWN_PROVIDER' })
  assert.throws(() => r.addCredential('google', { key: 'AIza-1' }), { code: 'ERR_DUPLICATE_KEY' })
  assert.throws(() => r.addProvider('openai', { credentials: [{ key: 'x' }] }), { code: 'ERR_DUPLICATE_PROVIDER' })
  r.destroy()
})

test('save and load with sync and async adapters; load of nothing is false', async () => {
  let stored = null
  const sync = { save: (s) => { stored = s }, load: () => stored }
  const a = new AIKeyRotator({ ...config(), persistence: sync })
  assert.equal(await a.load(), false)
  a.markExhausted('openai', 'sk-1')
  assert.equal(await a.save(), undefined)
  assert.equal(typeof stored, 'string')
  a.destroy()

  const asyncAdapter = { save: async (s) => { stored = s }, load: async () => stored }
  const b = new AIKeyRotator({ ...config(), persistence: asyncAdapter })
  assert.equal(await b.load(), true)
  assert.equal(b.getKey('openai').key, 'sk-2')
  b.destroy()

  const none = new AIKeyRotator(config())
  assert.equal(await none.load(), false)
  await none.save()
  none.destroy()

  const corrupt = new AIKeyRotator({ ...config(), persistence: { save() {}, load: () => 'not json' } })
  await assert.rejects(corrupt.load(), { code: 'ERR_INVALID_STATE' })
  corrupt.destroy()
})

test('after destroy every call throws a clear error', async () => {
  const r = new AIKeyRotator(config())
  r.getKey('openai')
  r.destroy()
  for (const call of [() => r.getKey('openai'), () => r.markExhausted('openai'), () => r.getStatus(), () => r.getProviders(), () => r.hasAvailable('openai')]) {
    assert.throws(call, (e) => e instanceof KeyRotatorError && e.code === 'ERR_ROTATOR_DESTROYED' && /destroyed/.test(e.message))
  }
  await assert.rejects(r.save(), { code: 'ERR_ROTATOR_DESTROYED' })
  await assert.rejects(r.load(), { code: 'ERR_ROTATOR_DESTROYED' })
  r.destroy() // twice is fine
})

test('invalid configuration throws with a code, naming provider and credential, never the key', () => {
  const cases = [
    [{ providers: { openai: { credentials: [] } } }, 'ERR_INVALID_CONFIG', /openai/],
    [{ providers: { openai: { credentials: [{ key: '' , label: 'blank' }] } } }, 'ERR_INVALID_CONFIG', /blank.*openai/],
    [{ providers: { openai: { credentials: [{ key: 'sk-dup-secret' }, { key: 'sk-dup-secret' }] } } }, 'ERR_DUPLICATE_KEY', /[0-9a-f]{16}.*openai/],
    [{ providers: { openai: { credentials: [{ key: 'k' }], cooldown: { type: 'fixed', durationMs: 0 } } } }, 'ERR_INVALID_CONFIG', /openai.*zero-length/],
    [{ providers: { openai: { credentials: [{ key: 'k' }], cooldown: { type: 'weekly' } } } }, 'ERR_INVALID_CONFIG', /openai/],
    [{ providers: { openai: { credentials: [{ key: 'k' }], cooldown: { type: 'daily-at', timeZone: 'Mars/Olympus' } } } }, 'ERR_INVALID_CONFIG', /openai/],
    [{ providers: { openai: { credentials: [{ key: 'k', lable: 'typo' }] } } }, 'ERR_INVALID_CONFIG', /openai.*lable/],
    [{ providers: { openai: { credentials: [{ key: 'k' }] } }, resetIntervalMs: -1 }, 'ERR_INVALID_CONFIG', /resetIntervalMs/],
    [{ providers: { openai: { credentials: [{ key: 'k' }] } }, bogus: 1 }, 'ERR_INVALID_CONFIG', /bogus/],
    [{ providers: [] }, 'ERR_INVALID_CONFIG', /providers/],
    [null, 'ERR_INVALID_CONFIG', /object/],
  ]
  const failures = []
  for (const [cfg, code, message] of cases) {
    try {
      new AIKeyRotator(cfg).destroy()
      failures.push(`${JSON.stringify(cfg)}: did not throw`)
    } catch (e) {
      if (!(e instanceof Error) || e.code !== code || !message.test(e.message) || e.message.includes('sk-dup-secret')) {
        failures.push(`${JSON.stringify(cfg)}: ${e.code} ${e.message}`)
      }
    }
  }
  assert.deepEqual(failures, [])
})

test('an idle rotator with the default background check does not keep the process alive', async () => {
  // The quick start test runs a whole program; this checks the same in-process: nothing the
  // rotator starts is a ref'd handle.
  const r = new AIKeyRotator({ providers: { p: { credentials: [{ key: 'k' }] } } })
  r.on('reset', () => {})
  const handles = process.getActiveResourcesInfo().filter((h) => h !== 'TTYWrap' && h !== 'PipeWrap')
  assert.ok(!handles.some((h) => /Timeout|ThreadSafe|Async/i.test(h)), handles.join(','))
  r.destroy()
})
