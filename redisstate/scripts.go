package redisstate

import "github.com/redis/go-redis/v9"

// The fleet's state lives in a hash, KEYS[1]:
//
//	e  epoch: one more at every change, so members apply each change once;
//	   it starts at the server's time in µs, so that a Redis that lost its
//	   data starts above every epoch it handed out before
//	s  state, numbered as breaker.State
//	u  while open: when the wait ends; while half-open: when it began (ms,
//	   by the Redis server's clock)
//	r  reopenings since the fleet last closed (for the back-off)
//	p  trial permits handed out in this half-open period
//	k  trial successes in this half-open period
//	w  the fleet's window, as layout gives it: set by the first member,
//	   and every member must have the same
//
// Its window lives in another hash, KEYS[2], as fields "<bucket>:c",
// "<bucket>:f" and "<bucket>:s": calls, failures and slow calls, with
// bucket = floor(time / bucket width). Every change is published on
// ARGV[1] as "epoch state remaining-ms": members take it as a hint to read
// the state, never as the state itself. Time is always the server's TIME.
//
// Whatever else wrote the keys is checked: a state hash whose fields are
// not what the scripts write starts again, closed, at a fresh epoch, and a
// window field that is not a count is dropped.
//
// prelude is the start of every script. Its arguments: ARGV[1] the channel,
// ARGV[2] the keys' TTL in ms, ARGV[3] the open wait in ms, ARGV[4] the
// longest open wait in ms (0: no back-off), ARGV[5] the longest half-open
// period in ms, ARGV[6] the member's window layout. Scripts return {epoch,
// state, remaining ms, extra}, or the error "BREAKERCONFIG <layout>" when
// the fleet's window is another than the member's.
const prelude = `
local st, win = KEYS[1], KEYS[2]
local chan, ttl, openms, maxopen, trialms, layout = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function count(v)
  local n = tonumber(v)
  if n == nil or n < 0 or n ~= math.floor(n) or n >= 2^53 then return nil end
  return n
end
local h = redis.call('HMGET', st, 'e', 's', 'u', 'r', 'p', 'k', 'w')
if h[7] and h[7] ~= layout then
  return redis.error_reply('BREAKERCONFIG ' .. h[7])
end
local e, s, u, r, p, k = count(h[1]), count(h[2]), count(h[3]), count(h[4]), count(h[5]), count(h[6])
if e == nil or e == 0 or s == nil or s > 4 or u == nil or r == nil or p == nil or k == nil then
  -- new, or written by something else: start again, closed
  e, s, u, r, p, k = math.max(e or 0, now * 1000) + 1, 0, 0, 0, 0, 0
  redis.call('DEL', st)
  redis.call('HSET', st, 'e', string.format('%d', e), 's', 0, 'u', 0, 'r', 0, 'p', 0, 'k', 0, 'w', layout)
elseif not h[7] then
  redis.call('HSET', st, 'w', layout)
end
local function remaining()
  if s == 1 then return math.max(u - now, 0) end
  return 0
end
local function wait()
  local w = openms
  if maxopen > 0 then
    for i = 1, r do
      if w >= maxopen then break end
      if w > maxopen / 2 then w = maxopen else w = w * 2 end
    end
  end
  return w
end
local function enter(to)
  e, s, p, k = e + 1, to, 0, 0
  redis.call('HSET', st, 'e', string.format('%d', e), 's', s, 'u', string.format('%d', u), 'r', r, 'p', 0, 'k', 0)
  redis.call('PUBLISH', chan, string.format('%d %d %d', e, s, remaining()))
end
local function done(extra)
  redis.call('PEXPIRE', st, ttl)
  redis.call('PEXPIRE', win, ttl)
  return {e, s, remaining(), extra or 0}
end
if s == 1 and now >= u then
  u = now
  enter(2)
elseif s == 2 and now - u >= trialms then
  -- trial calls that never told their end (a lost reply, a crashed
  -- instance) hold permits: a half-open period this long failed
  r = r + 1
  u = now + wait()
  enter(1)
end
`

// joinScript checks a joining member's window against the fleet's, and
// makes the fleet's keys if there are none.
var joinScript = redis.NewScript(prelude + `
return done()
`)

// syncScript adds a member's counts to the window, drops expired buckets
// and trips the fleet if the window says so. ARGV[7..9]: calls, failures,
// slow calls; ARGV[10] bucket width in ms; ARGV[11] window in ms; ARGV[12]
// minimum calls; ARGV[13] failure rate threshold; ARGV[14] slow call rate
// threshold (0: off); ARGV[15] how long ago, in ms, the counts were made
// (counts kept while the member was cut off; older than the window, they
// are left out). Extra: the calls in the window.
var syncScript = redis.NewScript(prelude + `
local calls, fails, slows = count(ARGV[7]) or 0, count(ARGV[8]) or 0, count(ARGV[9]) or 0
local width, span, age = tonumber(ARGV[10]), tonumber(ARGV[11]), count(ARGV[15]) or 0
local n, f, sl = 0, 0, 0
local all = redis.call('HGETALL', win)
for i = 1, #all, 2 do
  local b, kind = string.match(all[i], '^(%d+):([cfs])$')
  local v = count(all[i + 1])
  if b == nil or v == nil or (tonumber(b) + 1) * width <= now - span then
    redis.call('HDEL', win, all[i])
  elseif kind == 'c' then n = n + v
  elseif kind == 'f' then f = f + v
  else sl = sl + v end
end
local at = now - age
if calls > 0 and (s == 0 or s == 4) and (math.floor(at / width) + 1) * width > now - span then
  local b = math.floor(at / width)
  redis.call('HINCRBY', win, b .. ':c', calls)
  if fails > 0 then redis.call('HINCRBY', win, b .. ':f', fails) end
  if slows > 0 then redis.call('HINCRBY', win, b .. ':s', slows) end
  n, f, sl = n + calls, f + fails, sl + slows
end
local minimum, fthr, sthr = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
if s == 0 and n > 0 and n >= minimum and (f / n >= fthr or (sthr > 0 and sl / n >= sthr)) then
  r, u = 0, now + wait()
  enter(1)
end
return done(n)
`)

// claimScript hands out a trial permit. ARGV[7]: HalfOpenMaxCalls. Extra:
// 1 if granted. A closed or disabled fleet grants every call.
var claimScript = redis.NewScript(prelude + `
local granted = 0
if s == 0 or s == 4 then
  granted = 1
elseif s == 2 and p < tonumber(ARGV[7]) then
  p = p + 1
  redis.call('HSET', st, 'p', p)
  granted = 1
end
return done(granted)
`)

// trialScript records how a trial call ended. ARGV[7]: the epoch its permit
// was granted in; ARGV[8]: s (success), f (failure or slow) or i
// (ignored: the permit goes back); ARGV[9]: SuccessThreshold.
var trialScript = redis.NewScript(prelude + `
if s == 2 and e == tonumber(ARGV[7]) then
  local o = ARGV[8]
  if o == 'i' then
    if p > 0 then
      p = p - 1
      redis.call('HSET', st, 'p', p)
    end
  elseif o == 'f' then
    r = r + 1
    u = now + wait()
    enter(1)
  else
    k = k + 1
    if k >= tonumber(ARGV[9]) then
      r, u = 0, 0
      redis.call('DEL', win)
      enter(0)
    else
      redis.call('HSET', st, 'k', k)
    end
  end
end
return done()
`)

// setScript records a member's ForceOpen, Disable or Reset, which always
// apply: ARGV[7] the state. Reset also empties the window and forgets the
// back-off. (A member's own trip is no proposal: it pushes its counts, and
// the fleet's window decides.)
var setScript = redis.NewScript(prelude + `
local to = count(ARGV[7])
if to == 0 then
  r, u = 0, 0
  redis.call('DEL', win)
end
if to == 0 or to == 3 or to == 4 then
  enter(to)
end
return done()
`)

var scripts = []*redis.Script{joinScript, syncScript, claimScript, trialScript, setScript}
