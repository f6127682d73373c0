// Per virtual user: a channel among CHANNELS (uuids like chatload's), an id, a sender, a text.
const crypto = require('crypto');
const channels = Number(process.env.CHANNELS || 1000);
const gateway = process.env.GATEWAY;
function channel(i) {
  // "chate2e-" then the index: the canary's own channel ids.
  const hi = Buffer.from('chate2e-').toString('hex');
  const lo = i.toString(16).padStart(16, '0');
  const h = hi + lo;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
let next = 0;
module.exports = {
  message(context, events, done) {
    context.vars.channel = channel(Math.floor(Math.random() * channels));
    context.vars.id = crypto.randomUUID();
    context.vars.sender = crypto.randomUUID();
    context.vars.text = 'artillery bench message ' + context.vars.id.slice(0, 8);
    return done();
  },
  // The ws engine's `connect: { function }` hook: set where this user's socket connects.
  subscribeUrl(wsArgs, context, done) {
    const i = next++;
    wsArgs.target = `ws://${gateway}/ws?channel=${channel(i % channels)}&user=a${i}`;
    return done();
  },
};
