// A canary key must never appear in status, events, errors, saved state or a store's files.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'
import { AIKeyRotator } from '@ai-key-rotator/node'
import { tempDir } from './helpers.mjs'

const CANARY = 'sk-canary-9f27c1d4e8b3a6f0'
const NEEDLES = [CANARY, 'canary-9f27c1d4', '9f27c1d4e8b3a6f0']
const leaks = (text, where) => NEEDLES.filter((n) => text.includes(n)).map((n) => `${where}: ${n}`)

test('the canary key never leaks', async () => {
  const { dir, remove } = tempDir()
  const found = []
  try {
    let saved = ''
    const rotator = new AIKeyRotator({
      providers: {
        openai: { credentials: [{ key: CANARY }, { key: `${CANARY}-labelled`, label: 'backup' }], cooldown: { type: 'fixed', durationMs: 60_000 } },
      },
      persistence: { save: (s) => { saved = s }, load: () => saved },
      store: { type: 'sqlite', path: path.join(dir, 'state.db') },
    })
    const events = []
    for (const name of ['exhausted', 'rotated', 'allExhausted', 'reset', 'disabled', 'enabled', 'scopeExhausted']) {
      rotator.on(name, (...args) => events.push([name, ...args]))
    }
    const cred = rotator.getKey('openai')
    assert.equal(cred.key, CANARY) // handed out on purpose, and only here
    rotator.markExhausted('openai', CANARY)
    await rotator.reportResponse(rotator.getKey('openai'), {
      status: 401,
      body: `{"error":{"message":"Incorrect API key provided: ${CANARY}-labelled","code":"invalid_api_key"}}`,
    })
    rotator.enable('openai', `${CANARY}-labelled`)
    rotator.resetAll()
    rotator.markExhausted('openai')
    found.push(...leaks(JSON.stringify(events), 'events'))
    found.push(...leaks(JSON.stringify(rotator.getStatus()), 'status'))
    found.push(...leaks(inspect(rotator, { depth: 10 }), 'inspect'))
    await rotator.save()
    found.push(...leaks(saved, 'saved state'))
    rotator.flushStore()
    for (const f of readdirSync(dir)) found.push(...leaks(readFileSync(path.join(dir, f), 'latin1'), `store file ${f}`))

    const errors = []
    const capture = (fn) => { try { fn() } catch (e) { errors.push(`${e.code} ${e.message} ${e.stack}`) } }
    capture(() => new AIKeyRotator({ providers: { p: { credentials: [{ key: CANARY }, { key: CANARY }] } } }))
    capture(() => new AIKeyRotator({ providers: { p: { credentials: [{ key: CANARY, label: 7 }] } } }))
    capture(() => new AIKeyRotator({ providers: { p: { credentials: [{ key: CANARY, bogus: CANARY }] } } }))
    capture(() => rotator.addCredential('openai', { key: CANARY }))
    capture(() => rotator.addCredential('nope', { key: CANARY }))
    capture(() => rotator.acquire('openai'))
    const failed = await rotator.execute('openai', () => ({ status: 200 })).catch((e) => e)
    errors.push(`${failed.code} ${failed.message} ${JSON.stringify(failed.attempts)}`)
    assert.ok(errors.length >= 6)
    found.push(...leaks(errors.join('\n'), 'errors'))
    rotator.destroy()
  } finally {
    remove()
  }
  assert.deepEqual(found, [])
})
