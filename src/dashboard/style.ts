// CSS shared by the dashboard and the demo page (served inline: one request per page).
export const STYLE = `
:root {
  --bg: #0f1419; --panel: #182029; --line: #273340; --text: #dce3ea; --muted: #8a98a8;
  --accent: #4fb3ff; --ok: #3fcf8e; --warn: #f0b429; --bad: #ff6b6b;
  color-scheme: dark;
}
@media (prefers-color-scheme: light) {
  :root { --bg: #f5f7fa; --panel: #ffffff; --line: #dde3ea; --text: #17202a; --muted: #5c6b7a; color-scheme: light; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; border-bottom: 1px solid var(--line); background: var(--panel); flex-wrap: wrap; }
header h1 { font-size: 17px; margin: 0; font-weight: 650; }
header .spacer { flex: 1; }
main { padding: 20px 24px; max-width: 1280px; margin: 0 auto; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
section h2 { font-size: 14px; margin: 0 0 10px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
h3 { font-size: 15px; margin: 4px 0 8px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.spaced { margin-bottom: 16px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .v { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); } .badge.warn { color: var(--warn); } .badge.none { color: var(--muted); }
.banner { padding: 8px 12px; border-radius: 6px; margin-bottom: 12px; border: 1px solid var(--bad); color: var(--bad); }
.hidden { display: none !important; }
input, button, select { font: inherit; color: inherit; }
input { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; min-width: 0; }
button { background: var(--accent); color: #04121f; border: 0; border-radius: 6px; padding: 6px 14px; font-weight: 600; cursor: pointer; }
button.secondary { background: transparent; color: var(--text); border: 1px solid var(--line); }
form.row, .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
.login { max-width: 420px; margin: 10vh auto; }
.login input { flex: 1; }
.error { color: var(--bad); min-height: 1.4em; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 16px; }
svg.spark { width: 100%; height: 80px; display: block; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.log { height: 360px; overflow-y: auto; font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.log div { white-space: pre-wrap; word-break: break-word; }
.log .t { color: var(--muted); margin-right: 6px; }
.log .message { color: var(--ok); } .log .room { color: var(--accent); } .log .error { color: var(--bad); } .log .state { color: var(--warn); }
`;

/** The <head> both pages share: same viewport, no favicon request, the shared style. */
export const pageHead = (title: string, extra = "") => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">${extra}
<title>${title}</title>
<style>${STYLE}</style>
</head>`;
