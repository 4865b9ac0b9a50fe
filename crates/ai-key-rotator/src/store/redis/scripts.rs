//! The Lua scripts that change shared state on the server, atomically.
//!
//! Every script touches the keys of one provider: `{<prefix>:<provider>}:cooldowns`, a hash from
//! fingerprint to `c:<until-ms>` (cooling) or `d` (disabled), where a missing field means
//! available; and `{<prefix>:<provider>}:reasons`, a hash from fingerprint to why it cools or is
//! disabled (a `CooldownReason` as JSON: parsed facts, never response text).
//! The braces are a hash tag: every key of one provider lives in one slot, so the scripts (and
//! the budget scripts planned next to them, see `docs/stores.md`) run unchanged on Redis
//! Cluster. Each script that changes something publishes
//! `<origin>\n<fingerprint>\n<value>\n<provider>\n<reason>` on the `<prefix>:changes` channel,
//! where `<value>` is `c:<ms>`, `r:<up-to-ms>` (reset), `d` or `e` (enabled), and `<reason>` the
//! JSON reason of a cooldown or a disabling (empty otherwise; absent from older writers).
//!
//! Two more hashes per provider, in the same slot:
//! - `{<prefix>:<provider>}:models`: the per-model rests, a field `<fingerprint>:<model>` per
//!   rest with the value `<until-ms>:<reason JSON>`. A change is published with the value
//!   `m:<until-ms>` and the model as a sixth line (older readers ignore a value they do not
//!   know). Ended rests are deleted by the next [`MARK_MODEL`] of the provider.
//! - `{<prefix>:<provider>}:counters`: per fingerprint `<fp>:used` (every process adds the
//!   uses it counted), `<fp>:failures` (the last writer's streak), `<fp>:exhausted` and
//!   `<fp>:last` (the largest written). Not published: counters are read when a process
//!   starts.

use std::sync::LazyLock;

use redis::Script;

/// Cools a credential until ARGV[2] for reason ARGV[6] unless it already cools longer or is
/// disabled. Returns the stored value and reason afterwards, so racing processes agree on the
/// longest cooldown and why.
pub(super) static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == 'd' then return {cur, redis.call('HGET', KEYS[2], ARGV[1]) or ''} end
if cur then
  local t = tonumber(string.sub(cur, 3))
  if t and t >= tonumber(ARGV[2]) then return {cur, redis.call('HGET', KEYS[2], ARGV[1]) or ''} end
end
local v = 'c:' .. ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], v)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[6]) else redis.call('HDEL', KEYS[2], ARGV[1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\n' .. ARGV[1] .. '\n' .. v .. '\n' .. ARGV[5] .. '\n' .. ARGV[6])
return {v, ARGV[6]}
",
    )
});

/// Ends a cooldown that ends at or before ARGV[2]; a longer one (set by another process) stays.
pub(super) static RESET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or cur == 'd' then return 0 end
local t = tonumber(string.sub(cur, 3))
if t and t <= tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\n' .. ARGV[1] .. '\nr:' .. ARGV[2] .. '\n' .. ARGV[5] .. '\n')
  return 1
end
return 0
",
    )
});

/// Disables a credential (ARGV[2] = `d`) for reason ARGV[6], or enables a disabled one
/// (ARGV[2] = `e`).
pub(super) static DISABLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == 'd' then
  if cur == 'd' then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], 'd')
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[6]) else redis.call('HDEL', KEYS[2], ARGV[1]) end
else
  if cur ~= 'd' then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\n' .. ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. ARGV[5] .. '\n' .. ARGV[6])
return 1
",
    )
});

/// Rests a credential for one model: field ARGV[1] (`<fp>:<model>`) of the models hash
/// becomes `<until>:<reason>` (ARGV[2], ARGV[6]) unless it already rests longer; publishes the
/// change for fingerprint ARGV[7] and model ARGV[8]. Deletes the provider's rests that ended
/// by ARGV[9] (now). Returns the stored value afterwards, so racing processes agree on the
/// longest rest.
pub(super) static MARK_MODEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function ends(v)
  local i = string.find(v, ':', 1, true)
  if not i then return nil end
  return tonumber(string.sub(v, 1, i - 1))
end
local now = tonumber(ARGV[9])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local t = ends(all[i + 1])
  if not t or t <= now then redis.call('HDEL', KEYS[1], all[i]) end
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local t = ends(cur)
  if t and t >= tonumber(ARGV[2]) then return cur end
end
local v = ARGV[2] .. ':' .. ARGV[6]
redis.call('HSET', KEYS[1], ARGV[1], v)
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\n' .. ARGV[7] .. '\nm:' .. ARGV[2] .. '\n' .. ARGV[5] .. '\n' .. ARGV[6] .. '\n' .. ARGV[8])
return v
",
    )
});

/// Writes one credential's counters (fingerprint ARGV[1]): adds ARGV[2] uses, sets the
/// failure streak ARGV[3], raises exhaustions to ARGV[4] and the last exhaustion to ARGV[5]
/// (empty: none) when larger.
pub(super) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local f = ARGV[1]
redis.call('HINCRBY', KEYS[1], f .. ':used', ARGV[2])
redis.call('HSET', KEYS[1], f .. ':failures', ARGV[3])
local e = tonumber(redis.call('HGET', KEYS[1], f .. ':exhausted') or '0') or 0
if tonumber(ARGV[4]) > e then redis.call('HSET', KEYS[1], f .. ':exhausted', ARGV[4]) end
if ARGV[5] ~= '' then
  local l = tonumber(redis.call('HGET', KEYS[1], f .. ':last') or '0') or 0
  if tonumber(ARGV[5]) > l then redis.call('HSET', KEYS[1], f .. ':last', ARGV[5]) end
end
return 1
",
    )
});

/// Forgets every per-model rest of one credential (fields of the models hash starting with
/// ARGV[1], `<fp>:`): a reset made here. Not published: other processes keep theirs until they
/// end.
pub(super) static RESET_MODELS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], field)
    n = n + 1
  end
end
return n
",
    )
});
