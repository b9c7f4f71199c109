// The head's dashboard in headless Debian chromium (puppeteer-core) while a cluster workload runs
// (tests/dashboard/test_browser_cluster.c): the task stream has rows of both nodes' threads and is
// drawn, tasks done match the API and advance, progress bars per function, a memory bar per node; a
// node joining appears and a killed one is marked dead, with no reload. The C side reacts to the files
// SHOTS/cluster-join and SHOTS/cluster-kill. Usage: browser_cluster.mjs URL SHOTS NODE_A NODE_B
import { createRequire } from 'module';
import fs from 'fs';

const require = createRequire(process.env.DRAY_NPM_DIR + '/node_modules/');
const puppeteer = require('puppeteer-core');
const [url, shots, nodeA, nodeB] = process.argv.slice(2);
const origin = new URL(url).origin;

let failures = 0;
function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failures++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function api(path) {
  const r = await fetch(origin + path);
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}
async function until(page, fn, what, timeout, ...args) {
  try {
    await page.waitForFunction(fn, { timeout }, ...args);
    check(true, what);
    return true;
  } catch (e) {
    check(false, what);
    return false;
  }
}

const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const errors = [], external = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    const u = r.url();
    if (u.startsWith(origin) || u.startsWith('data:')) r.continue();
    else { external.push(u); r.abort(); }
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 2, { timeout: 30000 });
  check(await page.$eval('#mode', (e) => e.textContent) === 'head', 'the page shows a head');

  // Stream rows of both nodes' executor threads (node-N/K).
  await until(page, (a, b) => {
    const rows = (window.drayStreamRows || []).map((r) => r.name);
    return rows.some((n) => n.startsWith(`node-${a}/`) && /\/\d+$/.test(n)) &&
           rows.some((n) => n.startsWith(`node-${b}/`) && /\/\d+$/.test(n));
  }, `stream rows from node-${nodeA} and node-${nodeB}`, 30000, nodeA, nodeB);
  const rows = await page.evaluate(() => window.drayStreamRows.map((r) => r.name));
  console.log('rows: ' + rows.join(', '));
  const inked = await page.$eval('#stream', (c) => {
    const d = c.getContext('2d').getImageData(90, 0, c.width - 90, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250)) n++;
    return n;
  });
  check(inked > 100, `task stream drawn (${inked} coloured pixels)`);

  // Tasks done: within two API reads around the page's value, and advancing.
  const value = (id) => page.$eval('#' + id, (el) => Number(el.getAttribute('data-value')));
  const a0 = (await api('/api/v0/summary')).tasks.finished;
  await page.waitForFunction((a) => Number(document.getElementById('tasks-done').dataset.value) >= a,
                             { timeout: 10000 }, a0);
  const p1 = await value('tasks-done');
  const a1 = (await api('/api/v0/summary')).tasks.finished;
  check(a0 <= p1 && p1 <= a1, `tasks done on the page (${p1}) within the API's (${a0}..${a1})`);
  await sleep(2500);
  const p2 = await value('tasks-done');
  check(p2 > p1, `tasks done advance (${p1} -> ${p2})`);
  check(await value('tasks-failed') > 0, 'failed tasks shown');
  const groups = await page.$$eval('.bar.progress', (bs) => bs.map((b) => b.dataset.name));
  for (const g of ['bc_square', 'bc_slow', 'bc_boom'])
    check(groups.includes(g), `progress bar for ${g}`);
  const bars = await page.$$eval('.bar.mem', (bs) => bs.map((b) => Number(b.dataset.rss)));
  check(bars.length === 2 && bars.every((x) => x > 0), `a memory bar per node (${bars.join(', ')} bytes)`);
  await page.screenshot({ path: `${shots}/cluster-status.png`, fullPage: true });

  // Workers tab: the threads of both nodes.
  await page.click('.tab[data-tab="workers"]');
  await until(page, () => document.querySelectorAll('#workers-table tbody tr').length >= 2,
              'workers tab lists node threads', 10000);
  const wtext = await page.$eval('#workers-table', (x) => x.textContent);
  check(wtext.includes(`node-${nodeA}/`) && wtext.includes(`node-${nodeB}/`), 'workers of both nodes');
  await page.screenshot({ path: `${shots}/cluster-workers.png`, fullPage: true });
  await page.click('.tab[data-tab="tasks"]');
  await until(page, () => document.querySelectorAll('#functions-table tbody tr').length >= 3,
              'tasks tab lists the functions', 10000);
  await page.click('.tab[data-tab="actors"]');
  await until(page, () => document.querySelector('#actors-table .on-driver') !== null,
              'actors tab says they live in the drivers', 10000);
  await page.click('.tab[data-tab="status"]');

  // A node joins: a third memory bar and its rows, with no reload.
  fs.writeFileSync(`${shots}/cluster-join`, '');
  await until(page, () => document.querySelectorAll('.bar.mem').length === 3, 'a joining node appears', 30000);
  await until(page, () => (window.drayStreamRows || []).length > 0 &&
                          new Set(window.drayStreamRows.map((r) => r.node)).size >= 3,
              'the new node has stream rows', 30000);
  await page.screenshot({ path: `${shots}/cluster-joined.png`, fullPage: true });
  // Killed: marked dead.
  fs.writeFileSync(`${shots}/cluster-kill`, '');
  await until(page, () => document.querySelectorAll('.bar.mem.dead').length === 1, 'a killed node is marked dead', 30000);
  await until(page, () => (window.drayStreamRows || []).some((r) => r.name.endsWith('(dead)')),
              'its stream rows say dead', 10000);
  await page.screenshot({ path: `${shots}/cluster-dead.png`, fullPage: true });
  check(Number(await page.$eval('body', (b) => b.dataset.polls)) > 5, 'the page kept polling');
} finally {
  await browser.close();
}
check(errors.length === 0, 'no page errors' + (errors.length ? ': ' + errors.join('; ') : ''));
check(external.length === 0, 'no request left the dashboard' + (external.length ? ': ' + external.join(' ') : ''));
console.log(failures ? `${failures} check(s) failed` : 'cluster browser test passed; screenshots in ' + shots);
process.exit(failures ? 1 : 0);
