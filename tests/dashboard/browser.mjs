// Drives the live dashboard in headless Debian chromium (puppeteer-core, never a downloaded browser):
// the page's numbers against the API's, that they advance, every tab, screenshots, no request leaving
// the dashboard's origin, no page errors; then the offline report. Usage: browser.mjs URL REPORT SHOTS
import { createRequire } from 'module';
import fs from 'fs';

const require = createRequire(process.env.DRAY_NPM_DIR + '/node_modules/');
const puppeteer = require('puppeteer-core');
const [url, reportPath, shots] = process.argv.slice(2);
const origin = new URL(url).origin;

let failures = 0;
function check(cond, what) {
  if (cond) {
    console.log('ok   ' + what);
  } else {
    console.log('FAIL ' + what);
    failures++;
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function api(path) {
  const r = await fetch(origin + path);
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
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
    if (u.startsWith(origin) || u.startsWith('file:') || u.startsWith('data:')) {
      r.continue();
    } else {
      external.push(u);
      r.abort();
    }
  });

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 2, { timeout: 30000 });
  const value = (id) => page.$eval('#' + id, (el) => Number(el.getAttribute('data-value')));

  // Tasks done: the page shows a value the API had between the two reads around it.
  const a0 = (await api('/api/v0/summary')).tasks.finished;
  await page.waitForFunction((a) => Number(document.getElementById('tasks-done').dataset.value) >= a,
                             { timeout: 10000 }, a0);
  const p1 = await value('tasks-done');
  const a1 = (await api('/api/v0/summary')).tasks.finished;
  check(a0 <= p1 && p1 <= a1, `tasks done on the page (${p1}) within the API's (${a0}..${a1})`);
  const sum = await api('/api/v0/summary');
  check(await value('workers-count') === sum.workers, `workers on the page = API (${sum.workers})`);
  check(await value('nodes-count') === sum.nodes, `nodes on the page = API (${sum.nodes})`);
  const rssPage = await value('rss-bytes'), rssApi = (await api('/api/v0/nodes'))[0].rss_bytes;
  check(rssPage > 0 && Math.abs(rssPage - rssApi) / rssApi < 0.5,
        `memory on the page (${rssPage}) near the API's (${rssApi})`);
  const barRss = await page.$eval('.bar.mem', (el) => Number(el.dataset.rss));
  check(barRss > 0, `a memory bar per node (${barRss} bytes)`);
  const failedPage = await value('tasks-failed');
  check(failedPage > 0, `failed tasks shown (${failedPage})`);

  // They advance.
  await sleep(2500);
  const p2 = await value('tasks-done');
  check(p2 > p1, `tasks done advance (${p1} -> ${p2})`);

  // The task stream canvas has drawn blocks in function colours; progress bars per group.
  const inked = await page.$eval('#stream', (c) => {
    const d = c.getContext('2d').getImageData(90, 0, c.width - 90, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250)) n++;
    return n;
  });
  check(inked > 100, `task stream drawn (${inked} coloured pixels)`);
  const groups = await page.$$eval('.bar.progress', (bs) => bs.map((b) => b.dataset.name));
  for (const g of ['inc', 'slow_square', 'flaky', 'add_pair'])
    check(groups.includes(g), `progress bar for ${g}`);
  const graphBars = await page.$$eval('.bar.graph', (bs) => bs.length);
  const apiGraphs = (await api('/api/v0/progress')).graphs.length;
  check(graphBars > 0 && apiGraphs > 0, `graph progress bars (${graphBars}; API has ${apiGraphs} graphs)`);
  const apiInc = (await api('/api/v0/tasks')).by_function.find((f) => f.name === 'inc');
  const pageInc = await page.$eval('.bar.progress[data-name="inc"]', (b) => Number(b.dataset.done));
  check(pageInc > 0 && pageInc <= apiInc.done, `inc done on the page (${pageInc}) <= API (${apiInc.done})`);
  await page.screenshot({ path: `${shots}/status.png`, fullPage: true });

  // Every tab.
  const tabs = await page.$$eval('.tab', (b) => b.map((x) => x.dataset.tab));
  const expect = {
    workers: ['#workers-table tbody tr', 2],
    tasks: ['#functions-table tbody tr', 4],
    actors: ['#actors-table tbody tr', 1],
    tune: ['#tune table.tune-trials tbody tr', 4],
    serve: ['#serve table.serve-deps tbody tr', 1],
  };
  for (const t of tabs) {
    await page.click(`.tab[data-tab="${t}"]`);
    const visible = await page.$eval(`#view-${t}`, (v) => getComputedStyle(v).display !== 'none');
    check(visible, `tab ${t} shows its view`);
    if (expect[t]) {
      const [sel, n] = expect[t];
      try {
        await page.waitForFunction((s, k) => document.querySelectorAll(s).length >= k, { timeout: 15000 }, sel, n);
        check(true, `tab ${t}: at least ${n} rows`);
      } catch (e) {
        check(false, `tab ${t}: at least ${n} rows of ${sel}`);
      }
    }
    if (t === 'logs') {
      try {
        await page.waitForFunction(() => document.getElementById('logs').textContent.includes('wave'), { timeout: 10000 });
        check(true, 'logs tab shows the runtime log');
      } catch (e) {
        check(false, 'logs tab shows the runtime log');
      }
    }
    if (t === 'actors') {
      const txt = await page.$eval('#actors-table', (x) => x.textContent);
      check(txt.includes('DemoCounter'), 'actors tab lists DemoCounter');
    }
    if (t === 'serve') {
      const txt = await page.$eval('#serve', (x) => x.textContent);
      check(txt.includes('doubler'), 'serve tab lists the doubler deployment');
    }
    if (t === 'tune') {
      const txt = await page.$eval('#tune', (x) => x.textContent);
      check(txt.includes('demo_decay'), 'tune tab lists the experiment');
    }
    await page.screenshot({ path: `${shots}/${t}.png`, fullPage: true });
  }
  await page.click('.tab[data-tab="status"]');
  await page.close(); // the demo ends soon: its polls would fail from then on

  // The offline report, once the demo has written it.
  for (let i = 0; i < 600 && !fs.existsSync(reportPath); i++) await sleep(200);
  await sleep(300);
  check(fs.existsSync(reportPath), `report written (${reportPath})`);
  if (fs.existsSync(reportPath)) {
    const html = fs.readFileSync(reportPath, 'utf8');
    check(!/(src|href)="https?:/.test(html), 'report is self-contained');
    const rp = await browser.newPage();
    await rp.setViewport({ width: 1500, height: 1000 });
    rp.on('pageerror', (e) => errors.push('report: ' + e.message));
    await rp.setRequestInterception(true);
    rp.on('request', (r) => {
      if (r.url().startsWith('file:') || r.url().startsWith('data:')) r.continue();
      else { external.push(r.url()); r.abort(); }
    });
    await rp.goto('file://' + reportPath, { waitUntil: 'load' });
    const names = await rp.$$eval('#functions tbody tr td:first-child', (t) => t.map((x) => x.textContent));
    for (const g of ['inc', 'slow_square', 'flaky', 'add_pair'])
      check(names.includes(g), `report lists ${g}`);
    const doneInc = await rp.$eval('#functions tbody', (tb) => {
      for (const tr of tb.rows) if (tr.cells[0].textContent === 'inc') return Number(tr.cells[1].textContent);
      return 0;
    });
    check(doneInc > 0, `report: inc tasks done (${doneInc})`);
    const ink = await rp.$eval('#stream', (c) => {
      const d = c.getContext('2d').getImageData(90, 0, c.width - 90, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250)) n++;
      return n;
    });
    check(ink > 100, `report task stream drawn (${ink} coloured pixels)`);
    await rp.screenshot({ path: `${shots}/report.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
check(errors.length === 0, 'no page errors' + (errors.length ? ': ' + errors.join('; ') : ''));
check(external.length === 0, 'no request left the dashboard' + (external.length ? ': ' + external.join(' ') : ''));
console.log(failures ? `${failures} check(s) failed` : 'browser test passed; screenshots in ' + shots);
process.exit(failures ? 1 : 0);
