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
//
// Its window lives in another hash, KEYS[2], as fields "<bucket>:c",
// "<bucket>:f" and "<bucket>:s": calls, failures and slow calls, with
// bucket = floor(now / bucket width). Every change is published on ARGV[1]
// as "epoch state remaining-ms". Time is always the server's TIME.
//
// prelude is the start of every script. Its arguments: ARGV[1] the channel,
// ARGV[2] the keys' TTL in ms, ARGV[3] the open wait in ms, ARGV[4] the
// longest open wait in ms (0: no back-off), ARGV[5] the longest half-open
// period in ms. Scripts return {epoch, state, remaining ms, extra}.
const prelude = `
local st, win = KEYS[1], KEYS[2]
local chan, ttl, openms, maxopen, trialms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', st, 'e', 's', 'u', 'r', 'p', 'k')
local e, s, u = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
local r, p, k = tonumber(h[4]) or 0, tonumber(h[5]) or 0, tonumber(h[6]) or 0
if e == 0 then
  e = now * 1000
  redis.call('HSET', st, 'e', string.format('%d', e), 's', 0, 'u', 0, 'r', 0, 'p', 0, 'k', 0)
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

// syncScript adds a member's counts to the window, drops expired buckets
// and trips the fleet if the window says so. ARGV[6..8]: calls, failures,
// slow calls; ARGV[9] bucket width in ms; ARGV[10] window in ms; ARGV[11]
// minimum calls; ARGV[12] failure rate threshold; ARGV[13] slow call rate
// threshold (0: off). Extra: the calls in the window.
var syncScript = redis.NewScript(prelude + `
local calls, fails, slows = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local width, span = tonumber(ARGV[9]), tonumber(ARGV[10])
if calls > 0 and (s == 0 or s == 4) then
  local b = math.floor(now / width)
  redis.call('HINCRBY', win, b .. ':c', calls)
  if fails > 0 then redis.call('HINCRBY', win, b .. ':f', fails) end
  if slows > 0 then redis.call('HINCRBY', win, b .. ':s', slows) end
end
local n, f, sl = 0, 0, 0
local all = redis.call('HGETALL', win)
for i = 1, #all, 2 do
  local b, kind = string.match(all[i], '^(%d+):(%a)$')
  if b == nil or (tonumber(b) + 1) * width <= now - span then
    redis.call('HDEL', win, all[i])
  elseif kind == 'c' then n = n + tonumber(all[i + 1])
  elseif kind == 'f' then f = f + tonumber(all[i + 1])
  else sl = sl + tonumber(all[i + 1]) end
end
local minimum, fthr, sthr = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if s == 0 and n > 0 and n >= minimum and (f / n >= fthr or (sthr > 0 and sl / n >= sthr)) then
  r, u = 0, now + wait()
  enter(1)
end
return done(n)
`)

// claimScript hands out a trial permit. ARGV[6]: HalfOpenMaxCalls. Extra:
// 1 if granted. A closed or disabled fleet grants every call.
var claimScript = redis.NewScript(prelude + `
local granted = 0
if s == 0 or s == 4 then
  granted = 1
elseif s == 2 and p < tonumber(ARGV[6]) then
  p = p + 1
  redis.call('HSET', st, 'p', p)
  granted = 1
end
return done(granted)
`)

// trialScript records how a trial call ended. ARGV[6]: the epoch its permit
// was granted in; ARGV[7]: s (success), f (failure or slow) or i
// (ignored: the permit goes back); ARGV[8]: SuccessThreshold.
var trialScript = redis.NewScript(prelude + `
if s == 2 and e == tonumber(ARGV[6]) then
  local o = ARGV[7]
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
    if k >= tonumber(ARGV[8]) then
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

// setScript records a member's own change. ARGV[6]: the state; ARGV[7]: 1
// for ForceOpen, Disable or Reset, which always apply (Reset also empties
// the window and forgets the back-off), 0 for a trip, which applies only
// to a closed fleet.
var setScript = redis.NewScript(prelude + `
local to = tonumber(ARGV[6])
if ARGV[7] == '1' then
  if to == 0 then
    r, u = 0, 0
    redis.call('DEL', win)
  end
  enter(to)
elseif to == 1 and s == 0 then
  r, u = 0, now + wait()
  enter(1)
end
return done()
`)

var scripts = []*redis.Script{syncScript, claimScript, trialScript, setScript}
