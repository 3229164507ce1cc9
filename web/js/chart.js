// A small line chart in plain SVG: a few series over the last N samples, a zero-based y axis with
// its top value, a legend, and a text alternative. Written here instead of vendoring a charting
// library: four line charts updated once a second need about 100 lines, no dependency to audit or
// update, nothing to copy in a build step, and it works under CSP 'self' (no inline styles: the
// colours are classes in style.css).

const NS = 'http://www.w3.org/2000/svg';
const W = 320;
const H = 140;
const PAD_L = 40;
const PAD_R = 8;
const PAD_T = 10;
const PAD_B = 18;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    el.setAttribute(k, String(v));
  }
  return el;
}

function niceMax(v) {
  if (v <= 0) {
    return 1;
  }
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (v <= m * p) {
      return m * p;
    }
  }
  return 10 * p;
}

function fmt(v) {
  if (Math.abs(v) >= 1e6) {
    return (v / 1e6).toFixed(1) + 'M';
  }
  if (Math.abs(v) >= 1e4) {
    return (v / 1e3).toFixed(0) + 'k';
  }
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
}

// createLineChart({title, series: ['name', ...], samples: 60, unit: '/s', test: 'chart-queue'})
// -> {el, push(values)}: push() appends one value per series and redraws.
export function createLineChart(opts) {
  const samples = opts.samples || 60;
  const data = opts.series.map(() => []);
  const fig = document.createElement('figure');
  fig.className = 'chart';
  if (opts.test) {
    fig.dataset.test = opts.test;
  }
  const cap = document.createElement('figcaption');
  cap.textContent = opts.title;
  const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.title});
  const desc = svg('desc', {});
  root.appendChild(desc);
  const grid = svg('g', {});
  const lines = opts.series.map((_, i) => svg('polyline', {class: `ln-${i % 4}`, points: ''}));
  root.appendChild(grid);
  for (const l of lines) {
    root.appendChild(l);
  }
  const legend = document.createElement('ul');
  legend.className = 'legend';
  const latest = opts.series.map((name, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch sw-${i % 4}`;
    const val = document.createElement('span');
    li.append(sw, `${name}: `, val);
    legend.appendChild(li);
    return val;
  });
  fig.append(cap, root, legend);

  const draw = () => {
    const max = niceMax(Math.max(0, ...data.flat()));
    grid.replaceChildren();
    for (const f of [0, 0.5, 1]) {
      const y = PAD_T + (H - PAD_T - PAD_B) * (1 - f);
      grid.appendChild(svg('line', {class: 'grid', x1: PAD_L, x2: W - PAD_R, y1: y, y2: y}));
      const t = svg('text', {class: 'axis', x: PAD_L - 4, y: y + 4, 'text-anchor': 'end'});
      t.textContent = fmt(max * f);
      grid.appendChild(t);
    }
    const t = svg('text', {class: 'axis', x: W - PAD_R, y: H - 4, 'text-anchor': 'end'});
    t.textContent = `last ${samples} s`;
    grid.appendChild(t);
    const dx = (W - PAD_L - PAD_R) / Math.max(1, samples - 1);
    data.forEach((d, i) => {
      const off = samples - d.length;
      lines[i].setAttribute('points', d.map((v, j) => {
        const x = PAD_L + (off + j) * dx;
        const y = PAD_T + (H - PAD_T - PAD_B) * (1 - v / max);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      }).join(' '));
      const last = d.length ? d[d.length - 1] : 0;
      latest[i].textContent = fmt(last) + (opts.unit || '');
    });
    desc.textContent = opts.series.map((n, i) => `${n} now ${fmt(data[i].length ? data[i][data[i].length - 1] : 0)}${opts.unit || ''}`).join('; ');
  };
  draw();
  return {
    el: fig,
    push(values) {
      values.forEach((v, i) => {
        data[i].push(Number.isFinite(v) ? v : 0);
        if (data[i].length > samples) {
          data[i].shift();
        }
      });
      draw();
    },
  };
}
