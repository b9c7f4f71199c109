/* Drawing shared by the live page and the offline report: task-stream rectangles, function colours
 * (Dask's reserved colours for transfers, spills, errors and (de)serialisation), memory bars. */
'use strict';
var DrayDraw = (function () {
  var RESERVED = {transfer: '#d62728', spill: '#ff7f0e', unspill: '#ff7f0e', error: '#000000',
                  serialize: '#999999'};

  /* A stable colour per function name: hues away from red/orange (reserved), never grey/black. */
  function fnColor(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    var hue = 60 + (h % 280);          /* 60..340: skips the reds and oranges */
    return 'hsl(' + hue + ',60%,' + (42 + (h >> 9) % 16) + '%)';
  }

  function eventColor(e) {
    return RESERVED[e.kind] || fnColor(e.name);
  }

  /* Draws events [{start_ms, stop_ms, row, name, kind, count}] in rows (sorted row ids) over the
   * time window [t0, t1] (ms) on canvas. Returns the rows drawn. */
  function stream(canvas, events, rows, t0, t1) {
    var ctx = canvas.getContext('2d');
    var W = canvas.width, labelW = 90;
    var rowH = Math.max(8, Math.min(24, Math.floor((canvas.height - 20) / Math.max(1, rows.length))));
    ctx.clearRect(0, 0, W, canvas.height);
    ctx.font = '11px sans-serif';
    ctx.fillStyle = '#444';
    var index = {};
    rows.forEach(function (r, i) {
      index[r.row] = i;
      ctx.fillText(r.name, 4, 14 + i * rowH + rowH / 2 - 4);
    });
    var span = Math.max(1, t1 - t0), plotW = W - labelW - 4;
    events.forEach(function (e) {
      var i = index[e.row];
      if (i === undefined || e.stop_ms < t0 || e.start_ms > t1) return;
      var x0 = labelW + Math.max(0, (e.start_ms - t0) / span * plotW);
      var x1 = labelW + Math.min(plotW, (e.stop_ms - t0) / span * plotW);
      ctx.fillStyle = eventColor(e);
      ctx.fillRect(x0, 4 + i * rowH, Math.max(1, x1 - x0), rowH - 3);
    });
    /* The time axis. */
    ctx.fillStyle = '#666';
    var y = 4 + rows.length * rowH + 12;
    for (var k = 0; k <= 4; k++) {
      var t = t0 + span * k / 4;
      ctx.fillText((t / 1000).toFixed(1) + ' s', labelW + plotW * k / 4 - (k === 4 ? 30 : 0), y);
    }
    return rows.length;
  }

  /* A legend of the functions seen and the reserved colours. */
  function legend(el, names) {
    var html = names.map(function (n) {
      return '<span><i style="background:' + fnColor(n) + '"></i>' + esc(n) + '</span>';
    }).join('');
    html += '<span><i style="background:#d62728"></i>transfer</span>' +
            '<span><i style="background:#ff7f0e"></i>spill</span>' +
            '<span><i style="background:#000"></i>error</span>' +
            '<span><i style="background:#999"></i>(de)serialise</span>';
    el.innerHTML = html;
  }

  /* Memory bar with Dask's meanings: managed (object store) solid blue, orange once managed passes
   * the target (60% of the limit), unmanaged lighter, spilled grey. */
  function memoryBar(node, limit) {
    var rss = node.rss_bytes || 0, managed = node.object_store_bytes || 0,
        spilled = node.spilled_bytes || 0;
    var scale = Math.max(limit || 0, rss + spilled, 1);
    var managedColor = limit && managed > 0.6 * limit ? '#ff7f0e' : '#1f77b4';
    var unmanaged = Math.max(0, rss - managed);
    function seg(left, w, color, title) {
      return '<div title="' + title + '" style="left:' + (left * 100).toFixed(2) + '%;width:' +
             (w * 100).toFixed(2) + '%;background:' + color + '"></div>';
    }
    var a = managed / scale, b = unmanaged / scale, c = spilled / scale;
    return '<div class="barlabel"><span>' + esc(String(node.id)) + ' ' + esc(node.address || '') +
           (node.alive === false ? ' (dead)' : '') +
           '</span><span>' + bytes(rss) + (limit ? ' / ' + bytes(limit) : '') +
           (spilled ? ', spilled ' + bytes(spilled) : '') + '</span></div>' +
           '<div class="bar mem' + (node.alive === false ? ' dead' : '') + '" data-node="' +
           esc(String(node.id)) + '" data-rss="' + rss + '">' + seg(0, a, managedColor, 'managed') +
           seg(a, b, managedColor === '#1f77b4' ? '#9ecae1' : '#fdd0a2', 'unmanaged') +
           seg(a + b, c, '#999', 'spilled') + '</div>';
  }

  function bytes(n) {
    if (n === null || n === undefined) return '–';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }

  return {stream: stream, legend: legend, memoryBar: memoryBar, fnColor: fnColor, bytes: bytes,
          esc: esc};
})();
