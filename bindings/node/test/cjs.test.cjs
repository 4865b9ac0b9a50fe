// CommonJS and ESM load the same objects; an idle program that listens to events exits by itself.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { promisify } = require('node:util')

test('require and import give the same classes', async () => {
  const cjs = require('@ai-key-rotator/node')
  const esm = await import('@ai-key-rotator/node')
  assert.equal(cjs.AIKeyRotator, esm.AIKeyRotator)
  assert.equal(cjs.KeyRotatorError, esm.default.KeyRotatorError)
  const r = new cjs.AIKeyRotator({ providers: { p: { credentials: [{ key: 'k' }] } } })
  assert.ok(r instanceof esm.AIKeyRotator)
  assert.ok(r instanceof require('node:events').EventEmitter)
  r.destroy()
})

test('a program with listeners, a store and the default background check exits without destroy()', async () => {
  const dir = require('node:fs').mkdtempSync(path.join(require('node:os').tmpdir(), 'akr-exit-'))
  const program = `
    const { AIKeyRotator } = require('@ai-key-rotator/node')
    const store = { type: 'sqlite', path: ${JSON.stringify(path.join(dir, 'state.db'))} }
    const r = new AIKeyRotator({ providers: { p: { credentials: [{ key: 'k1' }, { key: 'k2' }] } }, store })
    for (const e of ['exhausted', 'rotated', 'allExhausted', 'reset']) r.on(e, () => {})
    r.markExhausted('p')
    console.log(r.getKey('p').key)
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', program], {
    cwd: path.join(__dirname, '..'),
    timeout: 60_000,
  })
  assert.equal(stdout, 'k2\n')
  require('node:fs').rmSync(dir, { recursive: true, force: true })
})
