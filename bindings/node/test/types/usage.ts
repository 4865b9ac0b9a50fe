// Type-checked with `tsc --noEmit -p test/types` (never run): how a TypeScript user writes it.
import { AIKeyRotator, KeyRotatorError, type Credential, type ProviderStatus, type Verdict } from '@ai-key-rotator/node'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'

const rotator = new AIKeyRotator({
  providers: {
    openai: {
      credentials: [{ key: 'sk-key1', label: 'personal' }, { key: 'sk-key2', label: 'work', scope: 'org-1' }],
      cooldown: { type: 'fixed', durationMs: 60_000 },
      strategy: 'round-robin',
      budget: { requestsPerMinute: 500, maxInFlight: 8 },
    },
    google: {
      credentials: [{ key: 'AIza-1', meta: { model: 'gemini-flash' } }],
      cooldown: { type: 'daily-at', at: '00:00', timeZone: 'America/Los_Angeles' },
    },
  },
  persistence: { save: async (state: string) => void state, load: () => null },
  resetIntervalMs: 0,
  store: { type: 'sqlite', path: '/tmp/akr.db' },
})

const cred: Credential | null = rotator.getKey('openai')
if (cred) console.log(cred.key, cred.label, cred.meta)
const marked: boolean = rotator.markExhausted('openai', 'sk-key1')
rotator.on('exhausted', (provider, credential) => console.log(provider, credential.label, credential.until))
rotator.on('rotated', (provider, to, from) => console.log(provider, to.fingerprint, from?.label))
rotator.on('allExhausted', (provider, until) => console.log(provider, until))
rotator.once('reset', (provider, count) => console.log(provider, count.toFixed()))
const status: ProviderStatus | null = rotator.getStatus('openai')
const all = rotator.getStatus()
console.log(marked, status?.available, all.openai?.credentials[0]?.state)

async function main(): Promise<void> {
  await rotator.save()
  const loaded: boolean = await rotator.load()
  const lease = rotator.acquire('openai', { session: 'conversation-1', tokens: 1000 })
  const verdict: Verdict = await lease.reportResponse(await fetch('http://127.0.0.1:1', { headers: { authorization: `Bearer ${lease.key}` } }))
  const answer = await rotator.execute({ provider: 'openai', fallback: ['google'], deadlineMs: 5_000 }, (attempt) =>
    fetch('http://127.0.0.1:1', { headers: { authorization: `Bearer ${attempt.key}` } }))
  console.log(loaded, verdict.kind, answer.status)
  const openai = new OpenAI({ apiKey: 'unused', fetch: rotator.fetch('openai', { maxAttempts: 3 }) })
  const anthropic = new Anthropic({ apiKey: 'unused', fetch: rotator.fetch('anthropic') })
  console.log(openai.baseURL, anthropic.baseURL)
  try {
    rotator.acquire('openai')
  } catch (e) {
    if (e instanceof KeyRotatorError) console.log(e.code, e.retryAt, e.retryAfter)
  }
  rotator.destroy()
}
void main()
