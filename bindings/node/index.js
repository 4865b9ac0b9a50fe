'use strict'
// CommonJS entry point. `index.mjs` re-exports the same objects for ESM.
const { AIKeyRotator, Lease } = require('./lib/rotator.js')
const { KeyRotatorError } = require('./lib/errors.js')

module.exports = { AIKeyRotator, Lease, KeyRotatorError }
