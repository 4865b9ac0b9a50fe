// Shared state: file, SQLite and Redis stores, the same the gateway and the Rust and Python
// processes use. Changes made by one rotator reach another through the store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
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

/** Makes a test CA and a certificate for 127.0.0.1 signed by it in `dir` with the `openssl`
 * command (as the core's `rediss://` tests do); whether that worked. */
function makeTestCa(dir) {
  const run = (...args) => spawnSync('openssl', args, { cwd: dir, stdio: 'ignore' }).status === 0
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  return run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=akr node test ca') &&
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost') &&
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf')
}

test('redis store over TLS: rediss:// with caFile shares cooldowns, and the password shows nowhere', async (t) => {
  if (spawnSync('redis-server', ['--version']).error) {
    t.skip('redis-server is not installed (.ci/run installs it)')
    return
  }
  const { dir, remove } = tempDir()
  if (spawnSync('openssl', ['version']).error || !makeTestCa(dir)) {
    remove()
    t.skip('the openssl command could not make a test CA (.ci/run installs openssl)')
    return
  }
  const port = await freePort()
  const password = 'sk-canary-redis-password-7f3e'
  // TLS only: the plain port is off, so nothing reaches this server without TLS.
  const server = spawn('redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'),
    '--tls-ca-cert-file', path.join(dir, 'ca.crt'), '--tls-auth-clients', 'no',
    '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir,
  ], { stdio: 'ignore' })
  try {
    const url = `rediss://:${password}@127.0.0.1:${port}`
    const store = { type: 'redis', url, prefix: `akr-node-tls-${port}`, caFile: path.join(dir, 'ca.crt') }
    let a
    await eventually(() => {
      try {
        a = new AIKeyRotator({ providers, store })
        if (a.storeError() === null) return true
        a.destroy()
      } catch {}
      return false
    }, 'redis-server accepts TLS connections')
    const b = new AIKeyRotator({ providers, store })
    assert.equal(b.storeError(), null)
    a.markExhausted('openai', 'sk-1')
    await eventually(() => b.getKey('openai')?.key === 'sk-2', 'b skips the key a cooled, over TLS')
    a.destroy()
    b.destroy()
    // Without the test CA the system's roots do not trust the server: the rotator starts
    // fresh and says why, without the password.
    const c = new AIKeyRotator({ providers, store: { ...store, caFile: undefined } })
    const error = c.storeError()
    assert.match(String(error), /certificate/i)
    assert.ok(!String(error).includes(password), String(error))
    c.destroy()
    // A CA file that does not exist is a configuration error that names it.
    assert.throws(() => new AIKeyRotator({ providers, store: { ...store, caFile: path.join(dir, 'missing-ca.pem') } }),
      { code: 'ERR_INVALID_CONFIG', message: /missing-ca\.pem/ })
  } finally {
    server.kill()
    if (server.exitCode === null) await once(server, 'exit')
    remove()
  }
})

test('an unknown store type is a configuration error', () => {
  assert.throws(() => new AIKeyRotator({ providers, store: { type: 'etcd' } }), { code: 'ERR_INVALID_CONFIG', message: /store/ })
})
