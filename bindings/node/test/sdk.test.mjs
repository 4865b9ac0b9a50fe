// The fetch adapter end to end: the real `openai` and `@anthropic-ai/sdk` packages, each with
// `fetch: rotator.fetch(provider)`, against the project's mock upstream. The mock answers the
// SDK's own placeholder key as invalid, so every success proves the adapter wrote a real key.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { AIKeyRotator, KeyRotatorError } from '@ai-key-rotator/node'
import { startMock } from './helpers.mjs'

let mock
before(async () => {
  const rules = { unused: 'invalid-key', 'oa-500': 'server-error', 'gm-i1': 'invalid-key' }
  for (const sdk of ['oa', 'an']) {
    rules[`${sdk}-r1`] = 'rate-limited:20000'
    rules[`${sdk}-d1`] = 'rate-limited:20000'
    rules[`${sdk}-d2`] = 'rate-limited:30000'
    rules[`${sdk}-i1`] = 'invalid-key'
  }
  mock = await startMock(rules)
})
after(() => mock.close())

const REPLY = 'Hello from the mock upstream.'
const SDKS = {
  openai: {
    prefix: 'oa',
    client: (fetch) => new OpenAI({ apiKey: 'unused', baseURL: `${mock.url}/v1`, fetch, maxRetries: 0 }),
    ask: async (client) => (await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content,
    stream: async (client) => {
      let text = ''
      const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true })
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
      return text
    },
  },
  anthropic: {
    prefix: 'an',
    client: (fetch) => new Anthropic({ apiKey: 'unused', baseURL: mock.url, fetch, maxRetries: 0 }),
    ask: async (client) => (await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })).content[0].text,
    stream: async (client) => {
      let text = ''
      const stream = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], stream: true })
      for await (const event of stream) if (event.type === 'content_block_delta') text += event.delta.text ?? ''
      return text
    },
  },
}

for (const [provider, sdk] of Object.entries(SDKS)) {
  const key = (name) => `${sdk.prefix}-${name}`
  const rotatorWith = (...keys) => new AIKeyRotator({ providers: { [provider]: { credentials: keys.map((k) => ({ key: key(k), label: k })) } } })

  test(`${provider}: a rate-limited key is cooled until the provider's time and the next key answers`, async () => {
    const r = rotatorWith('r1', 'ok1')
    const before = Date.now()
    assert.equal(await sdk.ask(sdk.client(r.fetch(provider))), REPLY)
    const [limited, ok] = r.getStatus(provider).credentials
    assert.equal(limited.state, 'cooling')
    assert.ok(limited.until >= before + 19_000 && limited.until <= Date.now() + 21_000, String(limited.until - before))
    assert.equal(ok.state, 'available')
    assert.equal(ok.timesUsed, 1)
    r.destroy()
  })

  test(`${provider}: an invalid key is disabled and the next key answers`, async () => {
    const r = rotatorWith('i1', 'ok2')
    const disabled = []
    r.on('disabled', (p, c, why) => disabled.push([p, c.label, why]))
    assert.equal(await sdk.ask(sdk.client(r.fetch(provider))), REPLY)
    assert.equal(r.getStatus(provider).credentials[0].state, 'disabled')
    assert.deepEqual(disabled, [[provider, 'i1', 'invalid key']])
    r.destroy()
  })

  test(`${provider}: every key cooling gives an error whose retryAt is the exact time a key is back`, async () => {
    const r = rotatorWith('d1', 'd2')
    const error = await sdk.ask(sdk.client(r.fetch(provider))).catch((e) => e)
    // The SDK wraps what fetch threw; the rotator's error is its cause.
    const cause = error instanceof KeyRotatorError ? error : error.cause
    assert.ok(cause instanceof KeyRotatorError, String(error))
    assert.equal(cause.code, 'ERR_NO_KEY_AVAILABLE')
    const status = r.getStatus(provider)
    assert.deepEqual(status.credentials.map((c) => c.state), ['cooling', 'cooling'])
    assert.equal(cause.retryAt, Math.min(...status.credentials.map((c) => c.until)))
    assert.equal(cause.retryAt, status.nextAvailableAt)
    assert.ok(cause.retryAfter > 0 && cause.retryAfter <= 20, String(cause.retryAfter))
    assert.equal(cause.response.status, 429)
    r.destroy()
  })

  test(`${provider}: a stream passes through untouched after a failover`, async () => {
    const r = rotatorWith('r1', 'ok3')
    assert.equal(await sdk.stream(sdk.client(r.fetch(provider))), REPLY)
    assert.equal(r.getStatus(provider).credentials[0].state, 'cooling')
    r.destroy()
  })
}

test('fallback: with no openai key left, the request goes to the next provider', async () => {
  const r = new AIKeyRotator({
    providers: {
      openai: { credentials: [{ key: 'oa-d1' }] },
      'openai-backup': { family: 'openai', credentials: [{ key: 'oa-ok-backup' }] },
    },
  })
  const client = SDKS.openai.client(r.fetch('openai', { fallback: ['openai-backup'] }))
  assert.equal(await SDKS.openai.ask(client), REPLY)
  assert.equal(r.getStatus('openai-backup').credentials[0].timesUsed, 1)
  r.destroy()
})

test('plain fetch through the adapter: a client error is returned at once, server errors after the last attempt', async () => {
  const r = new AIKeyRotator({ providers: { openai: { credentials: [{ key: 'oa-ok-plain' }] }, broken: { family: 'openai', credentials: [{ key: 'oa-500' }] } } })
  const f = r.fetch('openai')
  const ok = await f(`${mock.url}/v1/models`)
  assert.equal(ok.status, 200)
  assert.ok(Array.isArray((await ok.json()).data))
  const missing = await f(`${mock.url}/v1/nothing-here`)
  assert.equal(missing.status, 404)
  const failing = await r.fetch('broken', { maxAttempts: 2, backoffBaseMs: 1, backoffMaxMs: 1 })(`${mock.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] }),
  })
  assert.equal(failing.status, 500)
  // A server error says nothing about the key: it stays available.
  assert.equal(r.getStatus('broken').credentials[0].state, 'available')
  assert.equal(r.getStatus('broken').credentials[0].timesUsed, 2)
  r.destroy()
})

test('each dialect gets its key its own way: Gemini (no key left in the query) and Azure', async () => {
  const r = new AIKeyRotator({
    providers: {
      gemini: { credentials: [{ key: 'gm-i1' }, { key: 'gm-ok' }] },
      azure: { family: 'azure-openai', credentials: [{ key: 'az-ok' }] },
    },
  })
  const body = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] })
  // The caller's own key in the query is the mock's invalid 'unused': it must be removed.
  const sent = []
  const recording = (url, init) => {
    sent.push({ url: String(url), headers: init.headers })
    return fetch(url, init)
  }
  const gemini = await r.fetch('gemini', { fetch: recording })(`${mock.url}/v1beta/models/gemini-2.0-flash:generateContent?key=unused`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  })
  assert.equal(gemini.status, 200)
  assert.equal((await gemini.json()).candidates[0].content.parts[0].text, REPLY)
  assert.deepEqual(r.getStatus('gemini').credentials.map((c) => c.state), ['disabled', 'available'])
  assert.deepEqual(sent.map((s) => [new URL(s.url).searchParams.has('key'), s.headers['x-goog-api-key']]), [[false, 'gm-i1'], [false, 'gm-ok']])

  sent.length = 0
  const azure = await r.fetch('azure', { fetch: recording })(`${mock.url}/openai/deployments/gpt4/chat/completions?api-version=2024-10-21`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'api-key': 'unused' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
  })
  assert.equal(azure.status, 200)
  assert.equal((await azure.json()).choices[0].message.content, REPLY)
  assert.equal(sent[0].headers['api-key'], 'az-ok')
  assert.equal(sent[0].headers.authorization, undefined)
  r.destroy()
})
