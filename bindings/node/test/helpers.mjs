// Test helpers: the project's mock upstream as a child process, free ports, temp dirs.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const packageDir = path.resolve(here, '..')
const repo = path.resolve(here, '../../..')

/** The `mock-upstream` binary: `AKR_MOCK_UPSTREAM`, else the workspace's debug build. */
export const mockBinary = process.env.AKR_MOCK_UPSTREAM ?? path.join(repo, 'target/debug/mock-upstream')

/**
 * Starts `mock-upstream` on 127.0.0.1 at a free port, scripted per key:
 * `startMock({ 'sk-a': 'rate-limited:20000', 'sk-b': 'invalid-key' })`.
 */
export async function startMock(rules = {}, extraArgs = []) {
  const args = ['--listen', '127.0.0.1:0', ...extraArgs]
  for (const [key, behavior] of Object.entries(rules)) args.push('--on-key', `${key}=${behavior}`)
  const child = spawn(mockBinary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  const url = await new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      err += chunk
      const m = /listening on (\S+)/.exec(err)
      if (m) resolve(`http://${m[1]}`)
    })
    child.on('exit', (code) => reject(new Error(`mock-upstream exited (${code}): ${err}`)))
    child.on('error', reject)
  })
  return {
    url,
    async close() {
      child.kill()
      if (child.exitCode === null) await once(child, 'exit')
    },
  }
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'akr-node-'))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A loopback port that was free a moment ago. */
export async function freePort() {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** Collects every emission of `names` on `emitter` as [name, ...args]. */
export function record(emitter, names) {
  const seen = []
  for (const name of names) emitter.on(name, (...args) => seen.push([name, ...args]))
  return seen
}
