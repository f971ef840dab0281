#!/usr/bin/env node
// Summarises V8 .cpuprofile files (node --cpu-prof): the functions with the most self time, and the share of time
// inclusive time per function; with --callers=NAME, the time under functions named NAME split by the nearest
// caller from our own code (dist/src). Usage: node scripts/cpuprofile-top.mjs <file.cpuprofile> [--top=40] [--callers=NAME]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const topArg = args.find((a) => a.startsWith('--top='))?.slice('--top='.length);
const callersOf = args.filter((a) => a.startsWith('--callers=')).map((a) => a.slice('--callers='.length));
if (!file) {
  console.error('usage: node scripts/cpuprofile-top.mjs <file.cpuprofile> [--top=40]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const top = Number(topArg ?? 40);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (dt[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
const selfByFn = new Map();
for (const [id, us] of self) {
  const key = label(byId.get(id));
  selfByFn.set(key, (selfByFn.get(key) ?? 0) + us);
}
// Inclusive time per function (counted once per sample even when recursive).
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = new Map();
for (const [id, us] of self) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = label(byId.get(cur));
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
console.log(`total sampled ${(total / 1000).toFixed(0)} ms`);
console.log('--- self time');
for (const [k, us] of [...selfByFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
console.log('--- inclusive time');
for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);

for (const name of callersOf) {
  const byCaller = new Map();
  let under = 0;
  for (const [id, us] of self) {
    let cur = id;
    while (cur !== undefined && byId.get(cur).callFrame.functionName !== name) cur = parent.get(cur);
    if (cur === undefined) continue;
    under += us;
    let caller = parent.get(cur);
    while (caller !== undefined && !byId.get(caller).callFrame.url.includes('/dist/src/')) caller = parent.get(caller);
    const key = caller === undefined ? '(none)' : label(byId.get(caller));
    byCaller.set(key, (byCaller.get(key) ?? 0) + us);
  }
  console.log(`--- ${name}: ${pct(under)} of all samples, by nearest caller in dist/src`);
  for (const [k, us] of [...byCaller].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
}
