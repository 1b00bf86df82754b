package redisstate

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The fleet's state of a breaker lives in a hash, st:
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
// Its window lives in another hash, win, as fields "<bucket>:c",
// "<bucket>:f" and "<bucket>:s": calls, failures and slow calls, with
// bucket = floor(time / bucket width). Every change is published on the
// channel, A[1], as "epoch state remaining-ms": members take it as a hint
// to read the state, never as the state itself. Time is always the
// server's TIME.
//
// Whatever else wrote the keys is checked: a state hash whose fields are
// not what the scripts write starts again, closed, at a fresh epoch, and a
// window field that is not a count is dropped.
//
// Every script works on one or more breakers (entries): KEYS holds two
// keys per entry, its state and its window, and ARGV a fixed number of
// arguments per entry, A[1..n] to the entry's code. Each entry runs alone
// (pcall): one whose keys hold something else (a wrong type) fails alone,
// and the script answers for every entry, in order, with {epoch, state,
// remaining ms, extra}, or with the error's text, such as "BREAKERCONFIG
// <layout>" when the fleet's window is another than the member's. So a
// Store syncs many breakers with one command, and one bad name cuts off
// that name only. (In a Redis Cluster an entry's two keys share a slot, and
// one command carries one breaker's entries.)
//
// prelude is the start of every entry's code. Its arguments: A[1] the
// channel, A[2] the keys' TTL in ms, A[3] the open wait in ms, A[4] the
// longest open wait in ms (0: no back-off), A[5] the longest half-open
// period in ms, A[6] the member's window layout, A[7] "1" when the keys'
// TTL is due to be renewed (a key made new gets it at once).
const prelude = `
local chan, ttl, openms, maxopen, trialms, layout, refresh = A[1], tonumber(A[2]), tonumber(A[3]), tonumber(A[4]), tonumber(A[5]), A[6], A[7] == '1'
local h = redis.call('HMGET', st, 'e', 's', 'u', 'r', 'p', 'k', 'w')
if h[7] and h[7] ~= layout then
  return 'BREAKERCONFIG ' .. h[7]
end
local e, s, u, r, p, k = count(h[1]), count(h[2]), count(h[3]), count(h[4]), count(h[5]), count(h[6])
if e == nil or e == 0 or s == nil or s > 4 or u == nil or r == nil or p == nil or k == nil then
  -- new, or written by something else: start again, closed
  e, s, u, r, p, k = math.max(e or 0, now * 1000) + 1, 0, 0, 0, 0, 0
  redis.call('DEL', st)
  redis.call('HSET', st, 'e', string.format('%d', e), 's', 0, 'u', 0, 'r', 0, 'p', 0, 'k', 0, 'w', layout)
  redis.call('PEXPIRE', st, ttl)
elseif not h[7] then
  redis.call('HSET', st, 'w', layout)
end
local function enter(to)
  e, s, p, k = e + 1, to, 0, 0
  redis.call('HSET', st, 'e', string.format('%d', e), 's', s, 'u', string.format('%d', u), 'r', r, 'p', 0, 'k', 0)
  redis.call('PUBLISH', chan, string.format('%d %d %d', e, s, remaining(s, u)))
end
local function done(extra)
  if refresh then
    redis.call('PEXPIRE', st, ttl)
    redis.call('PEXPIRE', win, ttl)
  end
  return {e, s, remaining(s, u), extra or 0}
end
if s == 1 and now >= u then
  u = now
  enter(2)
elseif s == 2 and now - u >= trialms then
  -- trial calls that never told their end (a lost reply, a crashed
  -- instance) hold permits: a half-open period this long failed
  r = r + 1
  u = now + wait(openms, maxopen, r)
  enter(1)
end
`

// joinScript checks a joining member's window against the fleet's, and
// makes the fleet's keys if there are none.
var joinScript = newScript(7, `
return done()
`)

// syncScript adds a member's counts to the window, drops expired buckets
// and trips the fleet if the window says so. A[8..10]: calls, failures,
// slow calls; A[11] bucket width in ms; A[12] window in ms; A[13]
// minimum calls; A[14] failure rate threshold; A[15] slow call rate
// threshold (0: off); A[16] how long ago, in ms, the member began the
// counts (counts kept while it was cut off; older than the window, they
// are left out); A[19] the latest epoch the member knew when it began
// them (0: none yet): counts begun before the window was last cleared (a
// Reset, a close), under an older epoch, are left out; A[17] the member's id and A[18] the push's seq: the
// window's field "m:<id>" holds "<seq>:<ms>", the last seq it added and
// when, and a push of that seq or less, pushed again because its answer
// was lost, is not added twice. Extra: the calls in the window, or 0 with no calls to add
// (the window is not read).
var syncScript = newScript(19, `
local calls, fails, slows = count(A[8]) or 0, count(A[9]) or 0, count(A[10]) or 0
if calls == 0 then
  return done(0) -- nothing to add: no need to read the window
end
local width, span, age = tonumber(A[11]), tonumber(A[12]), count(A[16]) or 0
local me, seq, pe = 'm:' .. A[17], count(A[18]) or 0, count(A[19]) or 0
local at = now - age
local tb = math.floor(at / width) -- the bucket the counts go to
local n, f, sl, live, seen, cleared, cur, gone = 0, 0, 0, 0, 0, 0, {}, {}
local all = redis.call('HGETALL', win)
for i = 1, #all, 2 do
  local field, v = all[i], all[i + 1]
  local b, kind = string.match(field, '^(%d+):([cfs])$')
  if b then
    v = count(v)
    if v == nil or (tonumber(b) + 1) * width <= now - span then
      b = nil
    else
      live = live + 1
      if tonumber(b) == tb then cur[kind] = v end
      if kind == 'c' then n = n + v
      elseif kind == 'f' then f = f + v
      else sl = sl + v end
    end
  elseif field == 'z' then
    local z = count(v)
    if z and z <= e then b, cleared = z, z end
  elseif string.sub(field, 1, 2) == 'm:' then
    local q, t = string.match(v, '^(%d+):(%d+)$')
    if q and count(q) and tonumber(t) > now - span and tonumber(t) <= now then
      b = q
      if field == me then seen = tonumber(q) end
    end
  end
  if b == nil then gone[#gone + 1] = field end
end
for i = 1, #gone, 1000 do -- unpack takes some 8000 values at most
  redis.call('HDEL', win, unpack(gone, i, math.min(i + 999, #gone)))
end
if seq > seen and (s == 0 or s == 4) and (pe == 0 or pe >= cleared) and (tb + 1) * width > now - span then
  -- one write: the bucket's new counts, and this push's seq
  local w = {tb .. ':c', string.format('%d', (cur.c or 0) + calls), me, string.format('%d:%d', seq, now)}
  if fails > 0 then
    w[#w + 1], w[#w + 2] = tb .. ':f', string.format('%d', (cur.f or 0) + fails)
  end
  if slows > 0 then
    w[#w + 1], w[#w + 2] = tb .. ':s', string.format('%d', (cur.s or 0) + slows)
  end
  redis.call('HSET', win, unpack(w))
  if live == 0 and not refresh then
    redis.call('PEXPIRE', win, ttl) -- a window made new
  end
  n, f, sl = n + calls, f + fails, sl + slows
end
local minimum, fthr, sthr = tonumber(A[13]), tonumber(A[14]), tonumber(A[15])
if s == 0 and n > 0 and n >= minimum and (f / n >= fthr or (sthr > 0 and sl / n >= sthr)) then
  r, u = 0, now + wait(openms, maxopen, r)
  enter(1)
end
return done(n)
`)

// claimScript hands out a trial permit. A[8]: HalfOpenMaxCalls. Extra:
// 1 if granted. A closed or disabled fleet grants every call.
var claimScript = newScript(8, `
local granted = 0
if s == 0 or s == 4 then
  granted = 1
elseif s == 2 and p < tonumber(A[8]) then
  p = p + 1
  redis.call('HSET', st, 'p', p)
  granted = 1
end
return done(granted)
`)

// trialScript records how a trial call ended. A[8]: the epoch its permit
// was granted in; A[9]: s (success), f (failure or slow) or i
// (ignored: the permit goes back); A[10]: SuccessThreshold.
var trialScript = newScript(10, `
if s == 2 and e == tonumber(A[8]) then
  local o = A[9]
  if o == 'i' then
    if p > 0 then
      p = p - 1
      redis.call('HSET', st, 'p', p)
    end
  elseif o == 'f' then
    r = r + 1
    u = now + wait(openms, maxopen, r)
    enter(1)
  else
    k = k + 1
    if k >= tonumber(A[10]) then
      r, u = 0, 0
      clear(win, e + 1)
      enter(0)
    else
      redis.call('HSET', st, 'k', k)
    end
  end
end
return done()
`)

// setScript records a member's ForceOpen, Disable or Reset, which always
// apply: A[8] the state. Reset also empties the window and forgets the
// back-off. (A member's own trip is no proposal: it pushes its counts, and
// the fleet's window decides.)
var setScript = newScript(8, `
local to = count(A[8])
if to == 0 then
  r, u = 0, 0
  clear(win, e + 1)
end
if to == 0 or to == 3 or to == 4 then
  enter(to)
end
return done()
`)

var scripts = []script{joinScript, syncScript, claimScript, trialScript, setScript}

// script is a Lua script over entries of n arguments each.
type script struct {
	*redis.Script
	n int
}

// newScript makes the script that runs prelude and then body for each
// entry, in a function of its own: its state key st, its window key win
// and its arguments A[1..n], which are ARGV[ao+1..ao+n]. The server's time,
// now in ms, is read once.
// argv rewrites an entry's A[k] as ARGV[ao + k].
var argv = strings.NewReplacer("A[", "ARGV[ao + ")

func newScript(n int, body string) script {
	return script{n: n, Script: redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function count(v)
  local n = tonumber(v)
  if n == nil or n < 0 or n ~= math.floor(n) or n >= 2^53 then return nil end
  return n
end
-- clear empties a window of its counts, keeps what it knows of the
-- members' pushes, and notes the epoch it starts (z): counts begun under
-- an older epoch, pushed later, are left out.
local function clear(win, epoch)
  local fields = redis.call('HKEYS', win)
  for i = 1, #fields do
    if string.sub(fields[i], 1, 2) ~= 'm:' then redis.call('HDEL', win, fields[i]) end
  end
  redis.call('HSET', win, 'z', string.format('%d', epoch))
end
-- remaining is the open wait left in state s, open until u.
local function remaining(s, u)
  if s == 1 then return math.max(u - now, 0) end
  return 0
end
-- wait is the open wait after r reopenings: openms, doubled each time up
-- to maxopen (0: no back-off).
local function wait(openms, maxopen, r)
  local w = openms
  if maxopen > 0 then
    for i = 1, r do
      if w >= maxopen then break end
      if w > maxopen / 2 then w = maxopen else w = w * 2 end
    end
  end
  return w
end
local function one(st, win, ao)
` + argv.Replace(prelude+body) + `
end
local n, out = ` + strconv.Itoa(n) + `, {}
for i = 1, #KEYS / 2 do
  local ok, r = pcall(one, KEYS[2 * i - 1], KEYS[2 * i], (i - 1) * n)
  if not ok then
    if type(r) == 'table' and r.err then r = r.err end
    r = tostring(r)
  end
  out[i] = r
end
return out
`)}
}
