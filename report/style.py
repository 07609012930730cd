"""The report page's inline stylesheet and its Content-Security-Policy (no external resources of any kind)."""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --band: #f4f6fa; --warn: #8a4b00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.sub, .note { color: var(--muted); }
.sub { margin: 0 0 12px; }
.note { font-size: 13px; max-width: 1000px; }
.warn { color: var(--warn); }
#summary ul { font-size: 15px; background: var(--band); padding: 12px 12px 12px 32px; border-radius: 6px; }
table { border-collapse: collapse; margin: 12px 0 4px; font-size: 12.5px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; color: var(--fg); }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: var(--band); font-weight: 600; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfd; }
.ci { color: var(--muted); font-size: 11px; display: block; }
td.na { color: var(--muted); }
figure { margin: 10px 0 14px; }
figure img { max-width: 100%; height: auto; display: block; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; font-size: 13px; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
pre { margin: 0; font-size: 12px; background: var(--band); padding: 6px 8px; border-radius: 4px;
      white-space: pre-wrap; }
details { font-size: 13px; color: var(--muted); }
.table-wrap { overflow-x: auto; margin-bottom: 16px; }
td.text { text-align: left; white-space: normal; min-width: 10em; }
"""
