// ESM entry point: the CommonJS module's exports, so `instanceof` works across both.
import cjs from './index.js'

export const { AIKeyRotator, Lease, KeyRotatorError } = cjs
export default cjs
