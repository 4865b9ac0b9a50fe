// The original README's examples, unchanged but for the import line (test/readme/*.mjs), run as
// programs: they must print what the README says and exit by themselves, without destroy().
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { AIKeyRotator } from '@ai-key-rotator/node'
import { packageDir, tempDir } from './helpers.mjs'

const run = promisify(execFile)
const example = (name) => path.join(packageDir, 'test/readme', name)

test('quick start prints the first key and exits on its own', async () => {
  const { stdout } = await run(process.execPath, [example('quickstart.mjs')], { timeout: 60_000 })
  assert.equal(stdout, 'sk-key1\n')
})

test('quick start: the marked key is skipped and meta comes back', () => {
  const rotator = new AIKeyRotator({
    providers: {
      openai: {
        credentials: [{ key: 'sk-key1', label: 'personal' }, { key: 'sk-key2', label: 'work' }],
        cooldown: { type: 'fixed', durationMs: 60_000 },
      },
      google: { credentials: [{ key: 'AIza-1', meta: { model: 'gemini-flash' } }, { key: 'AIza-2', meta: { model: 'gemini-pro' } }] },
    },
  })
  assert.equal(rotator.getKey('openai').key, 'sk-key1')
  assert.equal(rotator.markExhausted('openai', 'sk-key1'), true)
  const next = rotator.getKey('openai')
  assert.deepEqual({ ...next }, { key: 'sk-key2', label: 'work', meta: undefined })
  assert.deepEqual(rotator.getKey('google').meta, { model: 'gemini-flash' })
  rotator.destroy()
})

test('persistence example runs in a fresh directory and over a saved state', async () => {
  const { dir, remove } = tempDir()
  try {
    // The example resolves the package by its name from inside the package's folder; its
    // working directory, where it keeps state.json, is a temporary one.
    await run(process.execPath, [example('persistence.mjs')], { cwd: dir, timeout: 60_000 })
    const file = path.join(dir, 'state.json')
    const saver = new AIKeyRotator({
      providers: { openai: { credentials: [{ key: 'sk-a' }] } },
      persistence: { save: (s) => writeFileSync(file, s), load: () => null },
    })
    saver.markExhausted('openai')
    await saver.save()
    saver.destroy()
    await run(process.execPath, [example('persistence.mjs')], { cwd: dir, timeout: 60_000 })
  } finally {
    remove()
  }
})

test('the persistence adapter restores cooldowns; the file holds no key', async () => {
  const { dir, remove } = tempDir()
  try {
    const file = path.join(dir, 'state.json')
    const persistence = {
      save: (state) => writeFileSync(file, state),
      load: () => {
        try { return readFileSync(file, 'utf-8') } catch { return null }
      },
    }
    const providers = { openai: { credentials: [{ key: 'sk-secret-1' }, { key: 'sk-secret-2' }] } }
    const first = new AIKeyRotator({ providers, persistence })
    assert.equal(await first.load(), false)
    first.markExhausted('openai', 'sk-secret-1')
    await first.save()
    first.destroy()
    assert.ok(!readFileSync(file, 'utf-8').includes('sk-secret'))

    const second = new AIKeyRotator({ providers, persistence })
    assert.equal(second.getKey('openai').key, 'sk-secret-1')
    assert.equal(await second.load(), true)
    assert.equal(second.getKey('openai').key, 'sk-secret-2')
    second.destroy()
  } finally {
    remove()
  }
})
