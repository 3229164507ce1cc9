// Development only (not used by 80-browser.sh): serves web/ at / and /web/ and forwards every other
// request to a running bookingrush, for trying the tests before the binary serves the pages itself.
// usage: node devserve.mjs WEB_DIR API_PORT PORT_FILE
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const [webDir, apiPort, portFile] = process.argv.slice(2);
const TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png'};
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  let file = null;
  if (url.pathname === '/') {
    file = 'index.html';
  } else if (url.pathname.startsWith('/web/')) {
    file = path.normalize(url.pathname.slice(5));
  }
  if (file !== null) {
    const full = path.join(webDir, file);
    if (file.startsWith('..') || !fs.existsSync(full)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {'Content-Type': TYPES[path.extname(full)] || 'application/octet-stream',
      'Content-Security-Policy': "default-src 'self'"});
    fs.createReadStream(full).pipe(res);
    return;
  }
  const up = http.request({host: '127.0.0.1', port: apiPort, path: req.url, method: req.method, headers: req.headers},
    (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
  up.on('error', () => res.writeHead(502).end());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
