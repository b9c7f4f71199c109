/* The live dashboard page: polls the JSON API once a second (the task stream through its `since`
 * cursor), redraws the status view and the active tab. Rows and nodes follow what the API reports,
 * so workers coming and going need no reload. */
'use strict';
(function () {
  var D = DrayDraw, esc = D.esc;
  var TOKEN = new URLSearchParams(location.search).get('token');
  var WINDOW_MS = 10000, MAX_EVENTS = 50000;
  var state = {cursor: 0, events: [], rows: [], names: {}, tab: 'status', logCursor: 0,
               logProcess: 'runtime', polls: 0, memory: [], mode: 'embedded', dead: {}};

  function api(path) {
    var url = path;
    if (TOKEN) url += (path.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(TOKEN);
    return fetch(url, {cache: 'no-store'}).then(function (r) {
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return r.json();
    });
  }

  function setNum(id, v, text) {
    var el = document.getElementById(id);
    el.setAttribute('data-value', String(v));
    el.textContent = text !== undefined ? text : Number(v).toLocaleString('en-US');
  }

  function table(id, rows) {
    document.querySelector('#' + id + ' tbody').innerHTML = rows.map(function (r) {
      return '<tr>' + r.map(function (c) { return '<td>' + esc(c) + '</td>'; }).join('') + '</tr>';
    }).join('');
  }

  function fmt(x, d) { return x === null || x === undefined ? '–' : Number(x).toFixed(d); }

  /* ==== Status ==== */
  function summary(s) {
    window.drayLastSummary = s;
    state.mode = s.mode;
    document.getElementById('mode').textContent = s.mode;
    setNum('nodes-count', s.nodes);
    setNum('workers-count', s.workers);
    if (s.tasks) {
      setNum('tasks-done', s.tasks.finished);
      setNum('tasks-failed', s.tasks.failed);
      setNum('tasks-pending', s.tasks.pending);
    }
    if (s.rss_bytes !== undefined) setNum('rss-bytes', s.rss_bytes, D.bytes(s.rss_bytes));
    document.getElementById('cpu-pct').textContent = s.cpu_pct !== undefined ? fmt(s.cpu_pct, 0) + ' %' : '–';
    document.getElementById('uptime').textContent = s.uptime_s !== undefined ? fmt(s.uptime_s, 0) + ' s' : '–';
  }

  function stream(st) {
    state.cursor = st.next;
    Array.prototype.push.apply(state.events, st.events);
    st.events.forEach(function (e) { state.names[e.name] = true; });
    var t1 = st.now_ms, t0 = t1 - WINDOW_MS;
    state.events = state.events.filter(function (e) { return e.stop_ms >= t0; });
    if (state.events.length > MAX_EVENTS) state.events = state.events.slice(-MAX_EVENTS);
    /* On a head, rows are node-N/thread, grouped by node; a dead node's rows say so. */
    state.rows = st.rows.slice().sort(function (a, b) {
      return (a.row < 0) - (b.row < 0) || Math.abs(a.row) - Math.abs(b.row);
    }).map(function (r) {
      return r.node !== undefined && state.dead[r.node] ? {row: r.row, name: r.name + ' (dead)', node: r.node} : r;
    });
    window.drayStreamRows = state.rows;
    var canvas = document.getElementById('stream');
    canvas.height = Math.max(60, Math.min(600, 24 + state.rows.length * 22));
    D.stream(canvas, state.events, state.rows, t0, t1);
    D.legend(document.getElementById('legend'), Object.keys(state.names).filter(function (n) {
      return state.events.some(function (e) { return e.name === n && (e.kind === 'task'); });
    }));
    /* Once the cursor fell behind the server's window, pick up at its start. */
    if (st.next > st.first && st.events.length === 0 && state.cursor < st.first) state.cursor = st.first;
  }

  function progress(t) {
    var html = t.by_function.map(function (f) {
      var total = Math.max(f.submitted, f.done + f.failed, 1);
      var done = f.done / total * 100, failed = f.failed / total * 100;
      return '<div class="barlabel"><span>' + esc(f.name) + '</span><span>' +
             (f.done + f.failed).toLocaleString('en-US') + ' / ' + total.toLocaleString('en-US') +
             (f.failed ? ' (' + f.failed + ' failed)' : '') + '</span></div>' +
             '<div class="bar progress" data-name="' + esc(f.name) + '" data-done="' + f.done + '">' +
             '<div style="left:0;width:' + done.toFixed(2) + '%;background:' + D.fnColor(f.name) + '"></div>' +
             '<div style="left:' + done.toFixed(2) + '%;width:' + failed.toFixed(2) + '%;background:#000"></div>' +
             '</div>';
    }).join('');
    document.getElementById('progress').innerHTML = html || '<i>no tasks yet</i>';
    var states = t.by_state, rows = Object.keys(states).map(function (k) { return [k, states[k]]; });
    table('states-table', rows);
    table('functions-table', t.by_function.map(function (f) {
      return [f.name, f.submitted, f.done, f.failed, f.pending, fmt(f.total_s, 3), fmt(f.mean_ms, 4),
              fmt(f.max_ms, 3)];
    }));
  }

  function graphs(p) {
    var html = p.graphs.slice(0, 8).map(function (g) {
      var total = Math.max(g.tasks, 1), done = g.done / total * 100, failed = g.failed / total * 100;
      return '<div class="barlabel"><span>graph ' + g.id + (g.finished ? '' : ' (running)') + '</span><span>' +
             (g.done + g.failed) + ' / ' + g.tasks + (g.failed ? ' (' + g.failed + ' failed)' : '') +
             (g.end_ms !== null ? ', ' + ((g.end_ms - g.start_ms) / 1000).toFixed(3) + ' s' : '') + '</span></div>' +
             '<div class="bar graph" data-id="' + g.id + '" data-done="' + g.done + '">' +
             '<div style="left:0;width:' + done.toFixed(2) + '%;background:#2ca02c"></div>' +
             '<div style="left:' + done.toFixed(2) + '%;width:' + failed.toFixed(2) + '%;background:#000"></div></div>';
    }).join('');
    document.getElementById('graphs').innerHTML = html || '<i>no graphs yet</i>';
  }

  function nodes(ns, limit) {
    state.dead = {};
    ns.forEach(function (n) { if (n.alive === false) state.dead[n.id] = true; });
    document.getElementById('memory').innerHTML = ns.map(function (n) {
      return D.memoryBar(n, n.memory_limit_bytes || limit);
    }).join('');
    table('nodes-table', ns.map(function (n) {
      return [n.id, n.address, n.alive ? 'yes' : 'no', n.cpus, fmt(n.cpu_pct, 0), D.bytes(n.rss_bytes),
              D.bytes(n.object_store_bytes), D.bytes(n.spilled_bytes), n.tasks_done];
    }));
    var workers = [];
    ns.forEach(function (n) {
      (n.workers || []).slice().sort(function (a, b) {
        return (a.row < 0) - (b.row < 0) || Math.abs(a.row) - Math.abs(b.row);
      }).forEach(function (w) { workers.push(w); });
    });
    table('workers-table', workers.map(function (w) {
      return [w.name, w.tid, w.tasks, fmt(w.busy_s, 3), fmt(w.cpu_pct, 0), fmt(w.idle_s, 1)];
    }));
  }

  function memchart(m) {
    var c = document.getElementById('memchart'), ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    var s = m.samples.slice(-120);
    if (s.length < 2) return;
    var max = Math.max.apply(null, s.map(function (x) { return x.rss_bytes; })) || 1;
    ctx.strokeStyle = '#1f77b4';
    ctx.beginPath();
    s.forEach(function (x, i) {
      var px = i / (s.length - 1) * (c.width - 10) + 5, py = c.height - 15 - x.rss_bytes / max * (c.height - 25);
      if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = '#444';
    ctx.font = '11px sans-serif';
    ctx.fillText('RSS, last ' + s.length + ' s (max ' + D.bytes(max) + ')', 6, 12);
  }

  /* ==== Tabs ==== */
  function actors(a) {
    table('actors-table', a.map(function (x) {
      return [x.id, x.class, x.state, x.node, x.restarts, x.pending_calls, x.running_calls, x.refs];
    }));
  }

  function items(el, list, render) {
    document.getElementById(el).innerHTML = list.length ? list.map(render).join('') :
      '<i>nothing published yet</i>';
  }

  function tuneHtml(x) {
    var trials = x.trials || [];
    return '<h3>' + esc(x.name) + ' <small>' + esc(x.status || '') + (x.metric ? ', metric ' + esc(x.metric) : '') +
      '</small></h3><table class="tune-trials"><thead><tr><th>trial</th><th>status</th><th>config</th>' +
      '<th>iterations</th><th>last</th><th>history</th></tr></thead><tbody>' + trials.map(function (t) {
        var hist = (t.history || []).map(function (v) { return fmt(v, 3); }).join(' ');
        return '<tr><td>' + esc(t.id) + '</td><td>' + esc(t.status) + '</td><td>' + esc(JSON.stringify(t.config)) +
          '</td><td>' + esc(t.iterations) + '</td><td>' + esc(t.last === null || t.last === undefined ? '–' : fmt(t.last, 4)) +
          '</td><td>' + esc(hist) + '</td></tr>';
      }).join('') + '</tbody></table>';
  }

  function serveHtml(x) {
    var deps = x.deployments || [];
    return '<h3>' + esc(x.name) + '</h3><table class="serve-deps"><thead><tr><th>deployment</th>' +
      '<th>replicas</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>errors</th><th>requests</th></tr>' +
      '</thead><tbody>' + deps.map(function (d) {
        return '<tr><td>' + esc(d.name) + '</td><td>' + esc(d.replicas) + '</td><td>' + fmt(d.rps, 1) +
          '</td><td>' + fmt(d.p50_ms, 2) + '</td><td>' + fmt(d.p99_ms, 2) + '</td><td>' + esc(d.errors) +
          '</td><td>' + esc(d.requests) + '</td></tr>';
      }).join('') + '</tbody></table>';
  }

  function logs(l) {
    var sel = document.getElementById('log-process');
    var have = Array.prototype.map.call(sel.options, function (o) { return o.value; }).join(',');
    if (have !== l.processes.join(',')) {
      sel.innerHTML = l.processes.map(function (p) {
        return '<option' + (p === state.logProcess ? ' selected' : '') + '>' + esc(p) + '</option>';
      }).join('');
    }
    var pre = document.getElementById('logs');
    var text = l.lines.map(function (x) {
      return (x.level ? '[' + x.level + '] ' : '') + (x.source ? x.source + ': ' : '') + x.text;
    }).join('\n');
    if (state.logProcess === 'runtime') {
      if (text) pre.textContent += (pre.textContent ? '\n' : '') + text;
      state.logCursor = l.next;
    } else {
      pre.textContent = text;
    }
  }

  function pollTab() {
    var t = state.tab;
    if (state.mode === 'head' && (t === 'actors' || t === 'tune' || t === 'serve')) {
      /* These live in the drivers' runtimes, not on the head. */
      var note = '<i class="on-driver">shown by a driver\'s dashboard, not the head\'s</i>';
      if (t === 'actors') document.querySelector('#actors-table tbody').innerHTML = '<tr><td>' + note + '</td></tr>';
      else document.getElementById(t).innerHTML = note;
      return Promise.resolve();
    }
    if (t === 'actors') return api('/api/v0/actors').then(actors);
    if (t === 'tune') return api('/api/v0/tune').then(function (l) { items('tune', l, tuneHtml); });
    if (t === 'serve') return api('/api/v0/serve').then(function (l) { items('serve', l, serveHtml); });
    if (t === 'logs') {
      var q = state.logProcess === 'runtime' ? '?since=' + state.logCursor :
        '?process=' + encodeURIComponent(state.logProcess);
      return api('/api/v0/logs' + q).then(logs);
    }
    return Promise.resolve();
  }

  function poll() {
    var conn = document.getElementById('conn');
    var runtime = api('/api/v0/summary').then(function (s) {
      summary(s);
      /* A head serves the same routes for its nodes' work (their task events merged). */
      return api('/api/v0/nodes').then(function (n) { nodes(n, 0); }).then(function () {
        return Promise.all([
          api('/api/v0/stream?since=' + state.cursor + '&limit=20000').then(stream),
          api('/api/v0/tasks').then(progress),
          api('/api/v0/progress').then(graphs),
          api('/api/v0/memory').then(memchart)
        ]);
      });
    });
    Promise.all([runtime, pollTab()]).then(function () {
      state.polls++;
      conn.textContent = 'live · ' + new Date().toLocaleTimeString();
      conn.className = 'conn';
      document.body.setAttribute('data-polls', String(state.polls));
    }).catch(function (err) {
      conn.textContent = 'disconnected: ' + err.message;
      conn.className = 'conn bad';
    }).then(function () { setTimeout(poll, 1000); });
  }

  document.querySelectorAll('.tab').forEach(function (b) {
    b.addEventListener('click', function () {
      state.tab = b.getAttribute('data-tab');
      document.querySelectorAll('.tab').forEach(function (x) { x.classList.toggle('active', x === b); });
      document.querySelectorAll('.view').forEach(function (v) {
        v.classList.toggle('active', v.id === 'view-' + state.tab);
      });
      pollTab();
    });
  });
  document.getElementById('log-process').addEventListener('change', function (e) {
    state.logProcess = e.target.value;
    state.logCursor = 0;
    document.getElementById('logs').textContent = '';
    pollTab();
  });
  poll();
})();
