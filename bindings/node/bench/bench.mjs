// Benchmarks of the Node package, figures for BENCHMARKS.md:
//   node bench/bench.mjs            (after `npm run build`; AKR_MOCK_UPSTREAM names the mock)
//
// - getKey, side by side with a plain-JavaScript fill-first rotator written here as the
//   baseline (the original library's algorithm: a Map of providers, an index, a Date.now()
//   check of the current key's cooldown);
// - markExhausted;
// - the fetch adapter's overhead: the same request to the same mock with plain fetch and
//   through rotator.fetch, interleaved in one run.
// Each figure is the median of several rounds.
import { AIKeyRotator } from '../index.js'
import { startMock } from '../test/helpers.mjs'

const ROUNDS = 7

/** The original's fill-first algorithm, in plain JavaScript: the baseline. */
class PlainFillFirst {
  constructor(providers) {
    this.providers = new Map()
    for (const [name, cfg] of Object.entries(providers)) {
      this.providers.set(name, {
        current: 0,
        durationMs: cfg.cooldown?.durationMs ?? 60_000,
        credentials: cfg.credentials.map((c) => ({ credential: c, exhaustedUntil: 0 })),
      })
    }
  }

  getKey(provider) {
    const p = this.providers.get(provider)
    if (!p) return null
    const now = Date.now()
    const n = p.credentials.length
    for (let i = 0; i < n; i++) {
      const idx = (p.current + i) % n
      const c = p.credentials[idx]
      if (c.exhaustedUntil <= now) {
        p.current = idx
        return c.credential
      }
    }
    return null
  }

  markExhausted(provider, key) {
    const p = this.providers.get(provider)
    if (!p) return false
    const c = key === undefined ? p.credentials[p.current] : p.credentials.find((x) => x.credential.key === key)
    if (!c) return false
    c.exhaustedUntil = Date.now() + p.durationMs
    return true
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function nsPerCall(fn, calls) {
  const t0 = process.hrtime.bigint()
  fn(calls)
  return Number(process.hrtime.bigint() - t0) / calls
}

const providers = {
  openai: { credentials: [{ key: 'sk-1', label: 'a' }, { key: 'sk-2', label: 'b' }, { key: 'sk-3' }], cooldown: { type: 'fixed', durationMs: 60_000 } },
  anthropic: { credentials: [{ key: 'sk-ant-1' }] },
}

function benchGetKey() {
  const rotator = new AIKeyRotator({ providers })
  const plain = new PlainFillFirst(providers)
  let sink = 0
  const native = (n) => { for (let i = 0; i < n; i++) sink += rotator.getKey('openai').key.length }
  const baseline = (n) => { for (let i = 0; i < n; i++) sink += plain.getKey('openai').key.length }
  native(200_000)
  baseline(200_000) // warm up both
  const a = []
  const b = []
  for (let r = 0; r < ROUNDS; r++) {
    a.push(nsPerCall(native, 2_000_000))
    b.push(nsPerCall(baseline, 2_000_000))
  }
  rotator.destroy()
  if (sink === 0) throw new Error('unreachable')
  return { native: median(a), baseline: median(b) }
}

function benchMarkExhausted() {
  const keys = 2_000
  const credentials = Array.from({ length: keys }, (_, i) => ({ key: `sk-${i}` }))
  const rotator = new AIKeyRotator({ providers: { p: { credentials, cooldown: { type: 'fixed', durationMs: 60_000 } } }, resetIntervalMs: 0 })
  const names = credentials.map((c) => c.key)
  const rounds = []
  for (let r = 0; r < ROUNDS + 1; r++) {
    rotator.resetAll('p')
    const t0 = process.hrtime.bigint()
    for (const k of names) rotator.markExhausted('p', k)
    rounds.push(Number(process.hrtime.bigint() - t0) / keys)
  }
  rotator.destroy()
  return median(rounds.slice(1))
}

async function benchFetch() {
  const mock = await startMock({}, ['--fast'])
  const rotator = new AIKeyRotator({ providers: { openai: { credentials: [{ key: 'sk-bench-1' }, { key: 'sk-bench-2' }] } } })
  const rotating = rotator.fetch('openai')
  const url = `${mock.url}/v1/chat/completions`
  const init = () => ({ method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench-1' }, body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' })
  const run = async (f, n) => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await (await f(url, init())).arrayBuffer()
    return Number(process.hrtime.bigint() - t0) / n / 1000
  }
  await run(fetch, 300)
  await run(rotating, 300)
  // Short rounds, alternating, compared in pairs: on a shared machine the load drifts more
  // between rounds than the adapter costs.
  const plain = []
  const through = []
  const diffs = []
  for (let r = 0; r < 25; r++) {
    const p = await run(fetch, 200)
    const t = await run(rotating, 200)
    plain.push(p)
    through.push(t)
    diffs.push(t - p)
  }
  // The adapter alone: the same loop with an in-memory fetch that answers at once.
  const headers = { 'content-type': 'application/json', 'x-ratelimit-remaining-requests': '499', 'x-ratelimit-reset-requests': '120ms' }
  const instant = async () => new Response('{}', { status: 200, headers })
  const viaAdapter = rotator.fetch('openai', { fetch: instant })
  const inMemory = async (f, n) => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) await (await f(url, init())).arrayBuffer()
    return Number(process.hrtime.bigint() - t0) / n / 1000
  }
  const memDiffs = []
  for (let r = 0; r < 25; r++) memDiffs.push((await inMemory(viaAdapter, 500)) - (await inMemory(instant, 500)))
  rotator.destroy()
  await mock.close()
  return { plain: median(plain), through: median(through), overhead: median(diffs), inMemory: median(memDiffs) }
}

const g = benchGetKey()
console.log(`getKey                 ${g.native.toFixed(1)} ns/call   plain-JS fill-first baseline ${g.baseline.toFixed(1)} ns/call   ratio ${(g.native / g.baseline).toFixed(2)}x`)
const m = benchMarkExhausted()
console.log(`markExhausted          ${(m / 1000).toFixed(2)} µs/call`)
const f = await benchFetch()
console.log(`fetch (sequential)     plain ${f.plain.toFixed(1)} µs/request   rotator.fetch ${f.through.toFixed(1)} µs/request   overhead (median of paired rounds) ${f.overhead.toFixed(1)} µs`)
console.log(`fetch adapter alone    ${f.inMemory.toFixed(1)} µs/request (in-memory fetch, median of paired rounds)`)
