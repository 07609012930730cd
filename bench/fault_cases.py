"""bench/faults.py's hardening rows (issue 12): the faults a hostile user tried, each injected into the real
command on loopback, with what it measures beside a baseline of the same run where one means something.

6. A token echoed by the CAVE server: per-neuron 403s and a whole-call 401 whose bodies quote the request's
   Authorization header and token (the embedded server's echo_token) while a baseline `pilot` and `edits`
   run with that token; figure: outputs (stdout, stderr) and files (run dir, caches, a private HOME)
   that hold the token, against the answers that echoed it.
7. A change log dripped one byte every 0.5 s to `datastack ingest --timeout 3 --retries 0`; figure: the
   command's wall time against the same command on a healthy server.
8. Change-log bodies of 300 MiB (no Content-Length) to the same command (default cap 64 MiB); figure: its
   peak resident memory and wall time against the healthy run.
9. Ray's listeners while a pilot dispatches: every TCP listener of the pilot's process tree, how many are
   not on loopback, and which answer GET /metrics without a token; the Ray temp dir's and token's modes.
10. run.json deleted from a SIGKILLed run: a plain rerun, then --resume (which rebuilds it).
11. `edits --sample-sizes 4` on the heavy-tailed fly-like table, then `report --edits` on its output.

Loaded by bench/faults.py after bench/fault_kit.py (under the name faults.py gives it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

kit = sys.modules["bench_fault_kit"]  # bench/faults.py loads it first
Figures, REPO, PROOFPILOT = kit.Figures, kit.REPO, kit.PROOFPILOT
MOUSE = "minnie65_synthetic"
LOG_ROUTE = ("tabular_change_log_many",)
# the command: two neurons, one per change-log call, a 3 s timeout and no retries
INGEST = ("datastack", "ingest", "--datastack", MOUSE, "--limit", "2", "--batch-size", "1", "--workers", "2",
          "--timeout", "3", "--retries", "0", "--no-cache", "--no-details", "--no-write-server-cache",
          "--no-progress")  # fmt: skip
OVERSIZE_MIB = 300
LOOPBACK = ("127.", "::ffff:127.", "::1")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _one_clean_line(proc: subprocess.CompletedProcess) -> bool:
    """A failure said in one `proofpilot: error:` line, the last, and no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("proofpilot: error:")]
    return "Traceback" not in proc.stderr and errors == [_last_line(proc.stderr)]


# -- 6. an echoed token --------------------------------------------------------------------------------------
def token_echo(work: Path, ray_tmp: str) -> Figures:
    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    leak_test = kit.load(REPO / "tests" / "pilot" / "test_secret_redaction.py", "_faults_secret_redaction")
    secret, root = leak_test.SECRET, work / "token"
    env = kit.pilot_env(ray_tmp, {"PROOFPILOT_CAVE_TOKEN": secret, "HOME": str(root / "home"),
                                  "PROOFPILOT_CACHE_DIR": str(root / "cache")})  # fmt: skip
    edits = [str(PROOFPILOT), "-vv", "edits", "--datastack", MOUSE, "--no-write-server-cache",
             "--no-progress", "--no-figures", "--retries", "0", "--sample-sizes", "20",
             "--seed", "3"]  # fmt: skip
    run_dir, procs, echoed = root / "run", {}, 0
    whole_call_401 = FaultConfig(error_rate=1.0, error_status=401, sticky=True, echo_token=True,
                                 routes=("query",))  # fmt: skip
    with start_server(MOUSE) as server:
        for name, faults, cmd in (
            ("pilot 403", leak_test.PER_NEURON_403,
             [str(PROOFPILOT), "-vv", "pilot", "--datastack", MOUSE, "--neurons", "12",
              "--max-ops-per-neuron", "1", "--agent", "baseline", "--metrics-port", "0", "--no-progress",
              "--run-dir", str(run_dir)]),
            ("edits 403", leak_test.PER_NEURON_403, [*edits, "--out", str(root / "edits-403")]),
            ("edits 401", whole_call_401,  # its own cache: the table query must reach the server
             [*edits, "--out", str(root / "edits-401"), "--cache-dir", str(root / "cache-401")]),
        ):  # fmt: skip
            server.set_faults(faults)
            procs[name] = subprocess.run([*cmd, "--server-address", server.url], capture_output=True,
                                         text=True, timeout=600, env=env)  # fmt: skip
            echoed += server.faults_injected.get("error", 0)
    texts = [text for proc in procs.values() for text in (proc.stdout, proc.stderr)]
    files = leak_test.files_under(root)
    leaks = sum(secret in text for text in texts) + sum(secret.encode() in p.read_bytes() for p in files)
    run_json = (run_dir / "run.json").read_text() if (run_dir / "run.json").exists() else ""
    refused = procs["edits 401"].returncode != 0 and _one_clean_line(procs["edits 401"])
    survived = (procs["pilot 403"].returncode == procs["edits 403"].returncode == 0 and echoed > 0
                and refused and "[redacted]" in run_json)  # fmt: skip
    return Figures("6 token echoed (401/403)", f"{echoed} answers quote the token (pilot, edits)", survived,
                   kit.ledger(run_dir) if run_json else None, None,
                   f"edits on 401: exit {procs['edits 401'].returncode}, "
                   f"{'one line' if refused else 'NOT one clean line'}; run.json reasons "
                   f"{'redacted' if '[redacted]' in run_json else 'NOT redacted'}",
                   f"token in {leaks} of {len(texts) + len(files)} outputs/files")  # fmt: skip


# -- 7 and 8. a dripping and an oversized body ---------------------------------------------------------------
def _ingest(server, name: str, faults, work: Path) -> tuple[kit.Measured, object]:
    import pandas as pd

    server.set_faults(faults)
    out = work / "ingest" / name
    measured = kit.run_measured([str(PROOFPILOT), *INGEST, "--server-address", server.url, "--out",
                                 str(out / "out")], dict(os.environ), out)  # fmt: skip
    per = out / "out" / "per_neuron.parquet"
    return measured, (pd.read_parquet(per) if per.exists() else None)


def _rows_ledger(expected: list[int], per) -> kit.Ledger:
    """The neurons asked against the rows written (a neuron's failure is a row, never a missing one)."""
    if per is None:
        return kit.count_ledger(expected, [], [], [])
    return kit.count_ledger(expected, per["root_id"].tolist(), per["status"].tolist(),
                            per["reason"].fillna("").tolist())  # fmt: skip


def deadline_and_size(work: Path) -> list[Figures]:
    from proofpilot.datastack.embedded.faults import FaultConfig
    from proofpilot.datastack.embedded.server import start_server

    with start_server(MOUSE) as server:
        clean, clean_rows = _ingest(server, "clean", None, work)
        drip, drip_rows = _ingest(server, "drip", FaultConfig(drip_s=0.5, routes=LOG_ROUTE), work)
        big, big_rows = _ingest(server, "oversize", FaultConfig(oversize_bytes=OVERSIZE_MIB * 2**20,
                                                                 routes=LOG_ROUTE), work)  # fmt: skip
    if clean.returncode != 0 or clean_rows is None:
        raise RuntimeError(f"the healthy ingest failed: {_last_line(clean.stderr)}")
    expected = clean_rows["root_id"].tolist()
    rows = []
    for fault, what, run, per, reason, figure in (
        ("7 dripping change log", "1 byte / 0.5 s, --timeout 3 --retries 0", drip, drip_rows,
         "deadline 3 s exceeded",
         f"failed in {drip.wall_s:.1f} s; healthy {clean.wall_s:.1f} s (x{drip.wall_s / clean.wall_s:.2f})"),
        ("8 oversized body", f"{OVERSIZE_MIB} MiB change logs, cap 64 MiB", big, big_rows,
         "response over 64 MiB",
         f"peak RSS {big.peak_rss_mib:.0f} MiB; healthy {clean.peak_rss_mib:.0f} MiB "
         f"(x{big.peak_rss_mib / clean.peak_rss_mib:.2f}, +{big.peak_rss_mib - clean.peak_rss_mib:.0f} MiB "
         f"for 2 workers' capped reads); failed in {big.wall_s:.1f} s "
         f"(x{big.wall_s / clean.wall_s:.2f})"),
    ):  # fmt: skip
        book = _rows_ledger(expected, per)
        survived = run.returncode == 0 and book.reasons == {reason: len(expected)}
        note = f"exit {run.returncode}; rows {book.outcomes} {book.reasons}"
        rows.append(Figures(fault, what, survived, book, None, note, figure))
    return rows


# -- 9. Ray's listeners --------------------------------------------------------------------------------------
def listeners(pid: int) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP listener of `pid` and all its descendants."""
    import psutil

    top = psutil.Process(pid)
    found: list[tuple[str, str, int]] = []
    for proc in (top, *top.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            found.extend((proc.name(), addr.ip, addr.port) for addr in listening)
    return found


def answers_metrics(port: int) -> bool:
    """Whether 127.0.0.1:port serves GET /metrics with HTTP 200 to a request with no token."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def ray_listeners(work: Path, ray_tmp: str, stub_url: str) -> Figures:
    run_dir, home = work / "ray-ports", work / "ray-home"
    args = [*kit.SMALL_RUN, "--llm-url", stub_url, "--model", "stub", "--gpus-per-endpoint", "1",
            "--concurrency", "2", "--run-dir", str(run_dir)]  # fmt: skip
    proc = kit.start_pilot_cli(args, ray_tmp, extra_env={"HOME": str(home)})
    with kit.stopped_on_exit(proc):
        kit.wait_for_verdicts(run_dir / "verdicts.jsonl", 3, proc)  # Ray and its workers are up
        found = listeners(proc.pid)
        open_metrics = sorted(f"{name}:{port}" for name, _, port in found if answers_metrics(port))
        _, err = proc.communicate(timeout=600)
    exposed = [entry for entry in found if not entry[1].startswith(LOOPBACK)]
    token = home / ".ray" / "auth_token"
    modes = {"temp dir": stat.S_IMODE(os.stat(ray_tmp).st_mode),
             "token": stat.S_IMODE(token.stat().st_mode) if token.exists() else None}  # fmt: skip
    survived = proc.returncode == 0 and not exposed and modes == {"temp dir": 0o700, "token": 0o600}
    names = sorted({name for name, _, _ in found})
    return Figures("9 Ray listeners", f"{len(found)} listeners of {len(names)} processes during a pilot",
                   survived, kit.ledger(run_dir), None,
                   f"/metrics 200 without token: {', '.join(open_metrics) or 'none'}; modes "
                   + ", ".join(f"{k} {oct(v) if v is not None else 'absent'}" for k, v in modes.items())
                   + ("" if proc.returncode == 0 else f"; exit {proc.returncode}: {_last_line(err)[:80]}"),
                   f"non-loopback: {len(exposed)} of {len(found)}")  # fmt: skip


# -- 10. a lost run.json -------------------------------------------------------------------------------------
def lost_manifest(work: Path, ray_tmp: str, stub_url: str) -> Figures:
    run_dir = work / "lost-manifest"
    args = [*kit.SMALL_RUN, "--llm-url", stub_url, "--model", "stub", "--gpus-per-endpoint", "1",
            "--concurrency", "2", "--run-dir", str(run_dir)]  # fmt: skip
    killed_at, before = kit.killed_after(args, ray_tmp, 10)
    (run_dir / "run.json").unlink()
    plain = kit.run_pilot_cli(args, ray_tmp)
    resumed = kit.run_pilot_cli([*args, "--resume"], ray_tmp)
    manifest = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    new = re.search(r"\((\d+) new this session", resumed.stdout)
    survived = (plain.returncode != 0 and _one_clean_line(plain) and "pass --resume" in plain.stderr
                and resumed.returncode == 0 and bool(manifest.get("rebuilt")))  # fmt: skip
    return Figures("10 run.json deleted", f"SIGKILL after {killed_at} verdicts, run.json removed", survived,
                   kit.ledger(run_dir), kit.complete_lines(run_dir / "verdicts.jsonl").startswith(before),
                   f"plain rerun: exit {plain.returncode}, "
                   f"'{_last_line(plain.stderr).replace(str(run_dir), 'RUN_DIR')[19:]}'",
                   f"resume rebuilt run.json, {new.group(1) if new else '?'} new")  # fmt: skip


# -- 11. a small sample ------------------------------------------------------------------------------------
def small_sample(work: Path) -> Figures:
    eval_runs = kit.load(REPO / "tests" / "support" / "eval_runs.py", "_faults_eval_runs")
    out, html = work / "small" / "edits", work / "small" / "report.html"
    edits = subprocess.run([str(PROOFPILOT), "edits", "--datastack", kit.FLY, "--embedded", "--sample-sizes",
                            "4", "--out", str(out), "--cache-dir", str(work / "small" / "cache"),
                            "--no-write-server-cache", "--no-progress", "--no-figures"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    if edits.returncode != 0:
        return Figures("11 small sample (n=4)", "edits --sample-sizes 4", False, None, None,
                       f"edits exit {edits.returncode}: {_last_line(edits.stderr)[:80]}")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    lows = dict(eval_runs.ci_lows(summary))
    run = eval_runs.make_run(work / "small" / "run", eval_runs.hand_rows())
    report = subprocess.run([str(PROOFPILOT), "report", str(run), "--edits", str(out), "--out", str(html),
                             "--bootstrap", "200"], capture_output=True, text=True, timeout=600)  # fmt: skip
    rendered = report.returncode == 0 and "small sample: 4 neurons" in html.read_text()
    negative = sum(low < 0 for low in lows.values())
    (sample,) = summary["samples"]
    lo, hi = sample["mean_edits_ci"]
    return Figures("11 small sample (n=4)", "edits --sample-sizes 4, then report --edits",
                   rendered and negative == 0 and sample["small_sample"], None, None,
                   f"report exit {report.returncode}, flag shown: {rendered}",
                   f"mean {sample['mean_edits']:.1f} CI [{lo:.1f}, {hi:.1f}]; CI ends < 0: {negative} of "
                   f"{len(lows)}")  # fmt: skip
