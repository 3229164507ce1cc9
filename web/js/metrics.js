// Reads the few lines of GET /metrics (Prometheus text format 0.0.4) the dashboard needs.

// text -> [{name, labels: {k: v}, value}] for the metric names wanted (a Set); other lines skipped.
export function parseMetrics(text, wanted) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') {
      continue;
    }
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m || (wanted && !wanted.has(m[1]))) {
      continue;
    }
    const labels = {};
    if (m[3]) {
      for (const pair of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[pair[1]] = pair[2];
      }
    }
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}

// Totals the dashboard charts: requests, 4xx, 5xx, 429s (all routes), rate-limited refusals.
export function requestTotals(samples) {
  const t = {requests: 0, client: 0, server: 0, limited: 0};
  for (const s of samples) {
    if (s.name === 'br_http_requests_total') {
      t.requests += s.value;
      const st = s.labels.status || '';
      if (st.startsWith('5')) {
        t.server += s.value;
      } else if (st === '429') {
        t.limited += s.value;
      } else if (st.startsWith('4')) {
        t.client += s.value;
      }
    }
  }
  return t;
}
