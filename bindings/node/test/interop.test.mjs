// The same SQLite store, read by the Rust gateway's command-line tool: a cooldown set from Node
// is what `ai-key-rotator status` (reading the store when no gateway runs) reports.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { AIKeyRotator } from '@ai-key-rotator/node'
import { freePort, tempDir } from './helpers.mjs'

const gateway = process.env.AKR_GATEWAY_BIN

test('a cooldown set from Node is seen by the Rust gateway through the SQLite store', async (t) => {
  if (!gateway) {
    t.skip('AKR_GATEWAY_BIN is not set (scripts/test-node.sh sets it to the gateway binary when it is built)')
    return
  }
  const { dir, remove } = tempDir()
  try {
    const config = path.join(dir, 'rotator.toml')
    writeFileSync(config, [
      'listen = "127.0.0.1:8787"',
      'client_tokens = ["interop-token"]',
      'store = { type = "sqlite", path = "state.db" }',
      '[providers.openai]',
      'family = "openai"',
      'keys = [{ key = "sk-interop-1", label = "one" }, { key = "sk-interop-2", label = "two" }]',
      '',
    ].join('\n'))
    chmodSync(config, 0o600)
    const rotator = new AIKeyRotator({
      providers: { openai: { credentials: [{ key: 'sk-interop-1', label: 'one' }, { key: 'sk-interop-2', label: 'two' }] } },
      store: { type: 'sqlite', path: path.join(dir, 'state.db') },
    })
    rotator.markExhausted('openai', 'sk-interop-1')
    rotator.flushStore()
    const until = rotator.getStatus('openai').credentials[0].until
    rotator.destroy()

    const nobody = `http://127.0.0.1:${await freePort()}`
    const { stdout } = await promisify(execFile)(gateway, ['status', '--json', '--config', config, '--url', nobody], { timeout: 120_000 })
    assert.ok(!stdout.includes('sk-interop'))
    const status = JSON.parse(stdout)
    const openai = status.providers.find((p) => p.name === 'openai')
    const byLabel = Object.fromEntries(openai.credentials.map((c) => [c.label, c]))
    assert.equal(byLabel.one.state, 'cooling')
    assert.equal(byLabel.two.state, 'available')
    assert.equal(new Date(byLabel.one.until).getTime(), until)
  } finally {
    remove()
  }
})
