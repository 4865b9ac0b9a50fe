// Shared state: file, SQLite and Redis stores, the same the gateway and the Rust and Python
// processes use. Changes made by one rotator reach another through the store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AIKeyRotator } from '@ai-key-rotator/node'
import { freePort, tempDir } from './helpers.mjs'

const providers = { openai: { credentials: [{ key: 'sk-1', label: 'one' }, { key: 'sk-2', label: 'two' }], cooldown: { type: 'fixed', durationMs: 600_000 } } }

/** Polls `check` until it holds (a store's change reaches another process in the background). */
async function eventually(check, what) {
  // Generous: a loaded machine may take a while; the property, not the time, is checked.
  for (let i = 0; i < 1200; i++) {
    if (check()) return
    await sleep(25)
  }
  assert.fail(`never happened: ${what}`)
}

test('file store: a new rotator starts with the cooldowns the last one wrote', () => {
  const { dir, remove } = tempDir()
  try {
    const store = { type: 'file', path: path.join(dir, 'state.json') }
    const a = new AIKeyRotator({ providers, store })
    a.markExhausted('openai', 'sk-1')
    a.flushStore()
    a.destroy()
    const b = new AIKeyRotator({ providers, store })
    assert.equal(b.storeError(), null)
    assert.equal(b.getKey('openai').key, 'sk-2')
    b.destroy()
  } finally {
    remove()
  }
})

test('sqlite store: two live rotators share cooldowns', async () => {
  const { dir, remove } = tempDir()
  try {
    const store = { type: 'sqlite', path: path.join(dir, 'state.db'), pollIntervalMs: 10 }
    const a = new AIKeyRotator({ providers, store })
    const b = new AIKeyRotator({ providers, store })
    const remote = []
    b.on('remote', (change) => remote.push(change))
    assert.equal(b.getKey('openai').key, 'sk-1')
    a.markExhausted('openai', 'sk-1')
    a.flushStore()
    await eventually(() => b.getKey('openai')?.key === 'sk-2', 'b skips the key a cooled')
    await eventually(() => remote.length > 0, 'b emits the remote change')
    assert.equal(remote[0].event, 'exhausted')
    a.destroy()
    b.destroy()
  } finally {
    remove()
  }
})

test('redis store: two rotators share cooldowns through a redis-server', async (t) => {
  if (spawnSync('redis-server', ['--version']).error) {
    t.skip('redis-server is not installed (.ci/run installs it)')
    return
  }
  const { dir, remove } = tempDir()
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  try {
    const store = { type: 'redis', url: `redis://127.0.0.1:${port}`, prefix: `akr-node-${port}` }
    let a
    await eventually(() => {
      try {
        a = new AIKeyRotator({ providers, store })
        if (a.storeError() === null) return true
        a.destroy()
      } catch {}
      return false
    }, 'redis-server accepts connections')
    const b = new AIKeyRotator({ providers, store })
    a.markExhausted('openai', 'sk-1')
    await eventually(() => b.getKey('openai')?.key === 'sk-2', 'b skips the key a cooled')
    a.destroy()
    b.destroy()
  } finally {
    server.kill()
    if (server.exitCode === null) await once(server, 'exit')
    remove()
  }
})

test('an unknown store type is a configuration error', () => {
  assert.throws(() => new AIKeyRotator({ providers, store: { type: 'etcd' } }), { code: 'ERR_INVALID_CONFIG', message: /store/ })
})
