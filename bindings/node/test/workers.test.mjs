// Worker threads: the addon loads in each, and several call getKey at once over one shared
// SQLite store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { AIKeyRotator } from '@ai-key-rotator/node'
import { tempDir } from './helpers.mjs'

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { AIKeyRotator } = require(workerData.pkg)
const rotator = new AIKeyRotator({ providers: workerData.providers, store: workerData.store })
const counts = {}
for (let i = 0; i < workerData.calls; i++) {
  const c = rotator.getKey('openai')
  counts[c ? c.key : 'none'] = (counts[c ? c.key : 'none'] ?? 0) + 1
}
rotator.destroy()
parentPort.postMessage(counts)
`

test('four workers call getKey at once and all see the cooldown set before they started', async () => {
  const { dir, remove } = tempDir()
  try {
    const providers = { openai: { credentials: [{ key: 'sk-1' }, { key: 'sk-2' }, { key: 'sk-3' }], cooldown: { type: 'fixed', durationMs: 600_000 } } }
    const store = { type: 'sqlite', path: path.join(dir, 'state.db') }
    const main = new AIKeyRotator({ providers, store })
    main.markExhausted('openai', 'sk-1')
    main.flushStore()
    const calls = 20_000
    const pkg = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..')
    const results = await Promise.all([0, 1, 2, 3].map(() => new Promise((resolve, reject) => {
      const w = new Worker(WORKER, { eval: true, workerData: { pkg, providers, store, calls } })
      w.once('message', resolve)
      w.once('error', reject)
    })))
    for (const counts of results) assert.deepEqual(counts, { 'sk-2': calls })
    // The main thread's rotator is unaffected by the workers' own.
    assert.equal(main.getKey('openai').key, 'sk-2')
    main.destroy()
  } finally {
    remove()
  }
})
