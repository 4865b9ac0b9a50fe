// Type declarations for @ai-key-rotator/node: the original ai-key-rotator API, plus the
// Rust core's cooldown policies, scopes, strategies, budgets, leases, execute, stores and fetch.
import { EventEmitter } from 'node:events'

/** A credential as configured: the original's `{ key, label?, meta? }`, plus ours. */
export interface CredentialConfig {
  key: string
  label?: string
  meta?: Record<string, unknown>
  /** The quota scope shared with other keys of the provider (a project, an organization). */
  scope?: string
  /** Share of picks under the `weighted` strategy (at least 1). */
  weight?: number
}

/** What `getKey` returns. The same object for a credential until it is removed. */
export interface Credential {
  readonly key: string
  readonly label?: string
  readonly meta?: Record<string, unknown>
}

export type CooldownConfig =
  | { type: 'fixed'; durationMs: number }
  | { type: 'midnight-utc' }
  | { type: 'daily-at'; at?: string; timeZone: string }
  | { type: 'monthly'; day?: number; at?: string; timeZone?: string }
  | { type: 'exponential'; baseMs: number; factor?: number; maxMs: number; jitter?: boolean }
  | { type: 'from-response'; fallback: CooldownConfig; capMs?: number }

export type Strategy =
  | 'fill-first'
  | 'round-robin'
  | 'least-recently-used'
  | 'weighted'
  | 'least-in-flight'
  | 'most-remaining'

export interface Budget {
  requestsPerMinute?: number
  tokensPerMinute?: number
  requestsPerDay?: number
  tokensPerDay?: number
  maxInFlight?: number
  /** `"HH:MM"`: when the daily window starts. */
  dayStartsAt?: string
  timeZone?: string
}

export type Family =
  | 'openai' | 'azure-openai' | 'anthropic' | 'gemini' | 'groq' | 'mistral' | 'cohere'
  | 'openrouter' | 'deepseek' | 'xai' | 'together' | 'fireworks' | 'openai-compatible'

export interface ProviderConfig {
  credentials: CredentialConfig[]
  /** Midnight UTC by default, as in the original. */
  cooldown?: CooldownConfig
  /** How to read the provider's answers; by default the family named like the provider. */
  family?: Family
  strategy?: Strategy
  /** Limits for each key of the provider. */
  budget?: Budget
  /** Limits for all keys of a quota scope together. */
  scopeBudgets?: Record<string, Budget>
}

export type StoreConfig =
  | { type: 'memory' }
  | { type: 'file'; path: string }
  | { type: 'sqlite'; path: string; pollIntervalMs?: number }
  /** `url` may be `rediss://` (TLS); `caFile` is a PEM CA to trust instead of the system's roots. */
  | { type: 'redis'; url: string; prefix?: string; timeoutMs?: number; caFile?: string }

export interface PersistenceAdapter {
  save(state: string): void | Promise<void>
  load(): string | null | undefined | Promise<string | null | undefined>
}

export interface RotatorConfig {
  providers: Record<string, ProviderConfig>
  persistence?: PersistenceAdapter
  /** Background reset check interval (default 600000); 0 disables it. */
  resetIntervalMs?: number
  /** Durable state shared with other processes (the gateway, Rust, Python, Node). */
  store?: StoreConfig
  /** A fake clock for tests, standing at `fake` (Unix ms); move it with `advanceClock`. */
  clock?: { fake: number }
}

/** How events, status and errors name a credential: never by its key. */
export interface CredentialInfo {
  label: string | null
  fingerprint: string
}

export interface CooldownReason {
  cause: string
  verdict?: Verdict
  providerReset?: number
  scope?: string
}

export interface CredentialStatus {
  label?: string
  fingerprint: string
  maskedKey: string
  state: 'available' | 'cooling' | 'disabled'
  /** When a cooling credential is available again (Unix ms). */
  until?: number
  isExhausted: boolean
  /** The original's names: whether it is cooling or disabled, since when, until when. */
  exhausted: boolean
  exhaustedAt: number | null
  resetAt: number | null
  timesUsed: number
  timesExhausted: number
  lastExhaustedAt: number | null
  scope?: string
  reason?: CooldownReason
  consecutiveFailures: number
}

export interface ProviderStatus {
  name: string
  /** The same as `name`, as the original called it. */
  provider: string
  total: number
  available: number
  exhausted: number
  current: CredentialInfo | null
  /** The earliest time a key is available (Unix ms); `null` when none comes back by itself. */
  nextAvailableAt: number | null
  credentials: CredentialStatus[]
}

export type RotatorStatus = Record<string, ProviderStatus>

export type LimitScope = 'key' | 'shared'
export interface Usage {
  remainingRequests?: number | null
  remainingTokens?: number | null
  requestsReset?: number | null
  tokensReset?: number | null
}
/** What a provider's answer means for the key that sent it. */
export type Verdict =
  | ({ kind: 'ok' } & Usage)
  | { kind: 'rate-limited'; until: number | null; scope: unknown; limit: string }
  | { kind: 'quota-exhausted'; until: number | null; scope: unknown; limit: string }
  | { kind: 'invalid-key'; cause: string }
  | { kind: 'overloaded'; retryAfter: number | null }
  | { kind: 'server-error'; retryAfter: number | null }
  | { kind: 'client-error' }

/** A provider's answer: a WHATWG `Response` or its parts. */
export type ProviderResponse =
  | Response
  | { status: number; headers?: Headers | Record<string, string> | Array<[string, string]>; body?: string | Uint8Array | object }

export interface AcquireOptions {
  /** Keep this conversation on one key while it is available. */
  session?: string
  /** Tokens the request is expected to use, for token budgets. */
  tokens?: number
}

export interface Plan extends AcquireOptions {
  provider: string
  /** Providers to fall back to, in order, when every earlier one has no key. */
  fallback?: string | string[]
  /** At most this many attempts in all (4 by default). */
  maxAttempts?: number
  attemptTimeoutMs?: number
  /** A limit for the whole call; within it, execute waits for a cooling key that comes back. */
  deadlineMs?: number
  backoffBaseMs?: number
  backoffMaxMs?: number
}

export interface Attempt {
  readonly number: number
  readonly provider: string
  readonly key: string
  readonly label?: string
  readonly fingerprint: string
  readonly meta?: Record<string, unknown>
  /** Aborted when the loop gives up on this attempt (its time limit passed). */
  readonly signal: AbortSignal
}

export interface FetchOptions extends Omit<Plan, 'provider'> {
  /** Provider → base URL: a fallback provider's requests go to its own server. */
  baseURL?: Record<string, string>
  /** The fetch to send with (the global one by default). */
  fetch?: typeof globalThis.fetch
}

export interface AttemptRecord {
  provider: string
  label?: string
  fingerprint: string
  outcome: unknown
}

export declare class KeyRotatorError extends Error {
  readonly code: string
  /** When a key is back (Unix ms), for "no key available"; `null` when none comes back by itself. */
  readonly retryAt?: number | null
  /** The same as whole seconds from now, as an HTTP `retry-after` says it. */
  readonly retryAfter?: number | null
  readonly attempts?: AttemptRecord[]
  /** The provider's last answer, when there was one. */
  readonly response?: unknown
}

/** A credential held for one request; report how it went, or release it. */
export declare class Lease {
  readonly key: string
  readonly label?: string
  readonly meta?: Record<string, unknown>
  readonly provider: string
  readonly fingerprint: string
  reportResponse(response: ProviderResponse): Promise<Verdict>
  success(tokensUsed?: number): void
  release(): void
}

export interface AIKeyRotatorEvents {
  exhausted: [provider: string, credential: CredentialInfo & { until: number }]
  rotated: [provider: string, credential: CredentialInfo, from: CredentialInfo | null]
  allExhausted: [provider: string, until: number | null]
  reset: [provider: string, count: number, credentials: CredentialInfo[]]
  scopeExhausted: [provider: string, scope: string, credentials: CredentialInfo[], until: number]
  disabled: [provider: string, credential: CredentialInfo, reason: string]
  enabled: [provider: string, credential: CredentialInfo]
  remote: [change: Record<string, unknown>]
}

export declare class AIKeyRotator extends EventEmitter<AIKeyRotatorEvents> {
  constructor(config: RotatorConfig)
  getKey(provider: string): Credential | null
  markExhausted(provider: string, key?: string): boolean
  markCredentialExhausted(credential: Credential): boolean
  rotateNext(provider: string): boolean
  hasAvailable(provider: string): boolean
  getStatus(): RotatorStatus
  getStatus(provider: string): ProviderStatus | null
  getProviders(): string[]
  addCredential(provider: string, credential: CredentialConfig): void
  removeCredential(provider: string, key: string): boolean
  addProvider(name: string, config: ProviderConfig): void
  resetAll(provider?: string): number
  disable(provider: string, key: string): boolean
  enable(provider: string, key: string): boolean
  save(): Promise<void>
  load(): Promise<boolean>
  reportResponse(credential: Credential, response: ProviderResponse): Promise<Verdict>
  acquire(provider: string, options?: AcquireOptions): Lease
  execute<T extends ProviderResponse>(plan: Plan | string, fn: (attempt: Attempt) => T | Promise<T>): Promise<T>
  fetch(provider: string, options?: FetchOptions): typeof globalThis.fetch
  family(provider: string): Family | null
  now(): number
  advanceClock(ms: number): void
  flushStore(): void
  storeError(): string | null
  destroy(): void
}
