#!/usr/bin/env bash
# The OpenAPI document (server/openapi.json) is valid OpenAPI, checked by a
# real validator from the npm registry (@apidevtools/swagger-parser,
# installed into the build dir on first use), and holds to our own rules:
# every operation has an operationId and a security requirement (`[]` when
# public) naming a declared scheme, and every server URL is relative, so it
# fits whichever host serves it. It also follows the code: every route of
# server/parse.c's table is in it, and the queue's modes, gates and statuses
# (issue 13's waiting room included) are core/cmd.h's names. A live server
# serves this very document.
#
# Usage: scripts/test.d/60-openapi.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
#        (BR_OPENAPI_FILE=FILE checks another document, without a server)
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
doc=${BR_OPENAPI_FILE:-server/openapi.json}
fail() { echo "60-openapi: FAIL: $*" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  fail "node and npm are missing: scripts/install-deps.sh installs them"

# The validator, pinned; installed once per build dir (ignored by git).
tools=$(mkdir -p "$rel/tools/openapi" && cd "$rel/tools/openapi" && pwd)
if [ ! -f "$tools/node_modules/@apidevtools/swagger-parser/package.json" ]; then
  echo "60-openapi: installing @apidevtools/swagger-parser into $tools"
  npm install --prefix "$tools" --no-audit --no-fund --no-save --loglevel=error \
    @apidevtools/swagger-parser@10.1.1 >/dev/null
fi

NODE_PATH=$tools/node_modules node - "$doc" <<'JS'
const SwaggerParser = require("@apidevtools/swagger-parser");
const fs = require("fs");
const file = process.argv[2];
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
(async () => {
  const raw = JSON.parse(fs.readFileSync(file, "utf8"));
  // The validator: schema of the OpenAPI version, $refs, unique operationIds, path parameters.
  const api = await SwaggerParser.validate(JSON.parse(JSON.stringify(raw)));
  const problems = [];
  const schemes = Object.keys((raw.components || {}).securitySchemes || {});
  let count = 0;
  for (const [path, item] of Object.entries(raw.paths || {})) {
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      count++;
      const where = `${m.toUpperCase()} ${path}`;
      if (typeof op.operationId !== "string" || op.operationId === "")
        problems.push(`${where}: no operationId`);
      const sec = op.security !== undefined ? op.security : raw.security;
      if (!Array.isArray(sec))
        problems.push(`${where}: no security (security: [] when it is public)`);
      else
        for (const req of sec)
          for (const name of Object.keys(req))
            if (!schemes.includes(name)) problems.push(`${where}: unknown security scheme ${name}`);
    }
  }
  // The document follows the code (issue 13 and before): every route of the
  // route table (server/parse.c) is a path of the document, and the names
  // the API answers with (core/cmd.h's maps) are the schemas' enums.
  if (!process.env.BR_OPENAPI_FILE) {
    const norm = (t) => t.replace(/\{[^}]*\}/g, "{}");
    const parse = fs.readFileSync("server/parse.c", "utf8");
    const table = parse.slice(parse.indexOf("ROUTE_PATHS[BR_ROUTE_COUNT]"));
    const docPaths = new Set();
    for (const [path, item] of Object.entries(raw.paths || {}))
      for (const m of METHODS) if (item[m]) docPaths.add(`${m.toUpperCase()} ${norm(path)}`);
    let routes = 0;
    for (const m of table.matchAll(/\[BR_ROUTE_\w+\] = \{"(\w+)", "([^"]+)"\}/g)) {
      routes++;
      if (!docPaths.has(`${m[1]} ${norm(m[2])}`)) problems.push(`route ${m[1]} ${m[2]} is not in the document`);
    }
    if (routes < 30) problems.push(`read only ${routes} routes from server/parse.c`);
    const cmd = fs.readFileSync("core/cmd.h", "utf8");
    const names = (map) => {
      const body = cmd.slice(cmd.indexOf(`#define ${map}(X)`));
      const end = body.indexOf("\nenum ");
      return [...body.slice(0, end).matchAll(/X\(\w+, \d+, "(\w+)"\)/g)].map((x) => x[1]);
    };
    const schemas = (raw.components || {}).schemas || {};
    for (const [map, schema] of [["BR_QUEUE_MODE_MAP", "QueueMode"], ["BR_QUEUE_GATE_MAP", "QueueGate"],
                                 ["BR_QUEUE_STATUS_MAP", "QueueStatus"]]) {
      // "none" is never answered: a user not in the queue gets 404 NOT_IN_QUEUE.
      const want = names(map).filter((n) => !(map === "BR_QUEUE_STATUS_MAP" && n === "none"));
      const got = ((schemas[schema] || {}).enum || []);
      if (want.length === 0) problems.push(`no names read from core/cmd.h ${map}`);
      for (const n of want) if (!got.includes(n)) problems.push(`${schema} lacks "${n}" (core/cmd.h ${map})`);
      for (const n of got) if (!want.includes(n)) problems.push(`${schema} has "${n}", not in core/cmd.h ${map}`);
    }
  }
  const servers = raw.servers || [];
  if (servers.length === 0) problems.push("no servers");
  for (const s of servers)
    if (!/^\/(?!\/)/.test(s.url)) problems.push(`server ${s.url} is not relative to the serving host`);
  if (problems.length > 0) {
    for (const p of problems) console.error(`60-openapi: ${p}`);
    process.exit(1);
  }
  console.log(`60-openapi: ${api.info.title} ${api.info.version}: valid OpenAPI ${raw.openapi}, ` +
              `${count} operations, each with an operationId and a security requirement`);
})().catch((e) => { console.error(`60-openapi: invalid: ${e.message}`); process.exit(1); });
JS

[ -z "${BR_OPENAPI_FILE:-}" ] || exit 0
# The document a live server serves is this one.
tmp=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
"$rel/bookingrush" serve --port 0 --port-file "$tmp/port" --bind 127.0.0.1 --data-dir "$tmp/data" \
  >/dev/null 2>"$tmp/log" &
pid=$!
for _ in $(seq 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/log" >&2; fail "the server did not start"; }
curl -sf "http://127.0.0.1:$(cat "$tmp/port")/api/v1/openapi.json" -o "$tmp/served.json"
cmp -s "$tmp/served.json" "$doc" || fail "the served document differs from $doc"
echo "60-openapi: the server serves $doc"
