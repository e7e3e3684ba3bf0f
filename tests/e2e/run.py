#!/usr/bin/env python3
"""
run.py - the mxgate end-to-end test runner (STYLE R18).
Owns: discovery (test_*.py functions named test_*, and *.smtp transcripts),
one child process and one fresh temp dir per test, per-test time limits,
parallel runs, the report.  Never: touches a process it did not start.

Usage: run.py --binary PATH [-k SUBSTRING] [-j N] [--timeout S] [--keep]
              [--list]
A test function may take any of: ctx (mxlib.TestContext), gw (a started
Gateway with the default config), gw_factory (ctx.gateway: make more),
param (its case, see mxlib.params), binary, tmpdir.
Prints "PASS name (0.4s)" or "FAIL name: reason" per test, then
"e2e: N passed, M failed"; exits 1 if M > 0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import importlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DEFAULT_TIMEOUT = 180.0  # a guard against a hang, not a deadline
HARD_MARGIN = 30.0  # after the soft limit, the child's group is killed
TAIL_LINES = 40


# ---------------------------------------------------------------- discovery

def discover() -> list[tuple[str, dict]]:
    """[(name, spec)] in a stable order; spec says how to run it."""
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.basename(path)[:-3]
        mod = importlib.import_module(modname)
        for fname, fn in inspect.getmembers(mod, inspect.isfunction):
            if not fname.startswith("test_") or fn.__module__ != modname:
                continue
            cases = getattr(fn, "mx_params", None)
            if cases is None:
                tests.append((f"{modname}.{fname}",
                              {"module": modname, "func": fname}))
            else:
                for i, (cid, _) in enumerate(cases):
                    tests.append((f"{modname}.{fname}[{cid}]",
                                  {"module": modname, "func": fname,
                                   "case": i}))
    for path in sorted(glob.glob(os.path.join(HERE, "*.smtp"))):
        tests.append((os.path.basename(path), {"transcript": path}))
    return tests


def limit_for(spec: dict, default: float) -> float:
    if "func" in spec:
        mod = importlib.import_module(spec["module"])
        return float(getattr(getattr(mod, spec["func"]), "mx_timeout", default))
    return default


# ---------------------------------------------------------------- child side

class SoftTimeout(Exception):
    pass


def child_main(binary: str, spec: dict, tmpdir: str, limit: float,
               result_path: str) -> int:
    """Run one test in this process; write the result as JSON."""
    import mxlib

    def on_alarm(signum, frame):
        raise SoftTimeout(f"timed out after {limit:g}s")
    signal.signal(signal.SIGALRM, on_alarm)
    ctx = mxlib.TestContext(binary, tmpdir)
    ok, reason, detail = True, "", ""
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        run_spec(ctx, spec)
    except (mxlib.TestFailure, AssertionError, SoftTimeout) as e:
        ok, reason = False, str(e) or type(e).__name__
        detail = short_traceback(e)
    except Exception as e:
        ok, reason = False, f"{type(e).__name__}: {e}"
        detail = short_traceback(e)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        problems = ctx.close()
    except Exception as e:
        problems = [f"cleanup: {e!r}"]
    if problems:
        reason = "; ".join(([reason] if reason else []) + problems)
        ok = False
    with open(result_path, "w") as f:
        json.dump({"ok": ok, "reason": reason, "detail": detail}, f)
    return 0


def run_spec(ctx, spec: dict) -> None:
    if "transcript" in spec:
        import smtpscript
        smtpscript.run_transcript(ctx, spec["transcript"])
        return
    mod = importlib.import_module(spec["module"])
    fn = getattr(mod, spec["func"])
    avail = {
        "ctx": lambda: ctx,
        "gw": lambda: ctx.gateway(),
        "gw_factory": lambda: ctx.gateway,
        "param": lambda: fn.mx_params[spec["case"]][1],
        "binary": lambda: ctx.binary,
        "tmpdir": lambda: ctx.tmpdir,
    }
    kwargs = {}
    for pname in inspect.signature(fn).parameters:
        if pname not in avail:
            raise TypeError(f"{spec['func']}: unknown fixture {pname!r}")
        kwargs[pname] = avail[pname]()
    fn(**kwargs)


def short_traceback(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if os.path.dirname(os.path.abspath(f.filename))
            == HERE and not f.filename.endswith("run.py")]
    return "".join(traceback.format_list(mine[-4:]))


# ---------------------------------------------------------------- parent side

def log_tails(tmpdir: str) -> str:
    out = []
    for log in sorted(glob.glob(os.path.join(tmpdir, "gw*", "mxgate.log"))):
        with open(log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        out.append(f"--- {log} (last {TAIL_LINES} lines)")
        out += lines[-TAIL_LINES:]
    return "\n".join(out)


RUNNING: set[subprocess.Popen] = set()  # children now running
RUNNING_LOCK = threading.Lock()


def kill_group(p: subprocess.Popen) -> None:
    """Kill a child's process group (the child leads it: pgid == pid)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_result(path: str, status: int) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"ok": False, "reason": f"test process exited with status "
                f"{status} and no result", "detail": ""}


def run_one(args, name: str, spec: dict) -> tuple[bool, float, str]:
    """Run a test in a child process; returns (ok, seconds, report)."""
    tmpdir = tempfile.mkdtemp(prefix="mxgate-e2e-")
    result_path = os.path.join(tmpdir, "result.json")
    limit = limit_for(spec, args.timeout)
    t0 = time.monotonic()
    cmd = [sys.executable, os.path.abspath(__file__), "--binary", args.binary,
           "--child", json.dumps(spec), "--child-tmp", tmpdir,
           "--child-limit", str(limit), "--child-result", result_path]
    # The child leads its own process group: on a hard timeout the group
    # (the child and the gateways it started) is killed by its id.
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    with RUNNING_LOCK:
        RUNNING.add(p)
    try:
        out, _ = p.communicate(timeout=limit + HARD_MARGIN)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, _ = p.communicate(timeout=10)
        res = {"ok": False, "reason": f"hard timeout ({limit + HARD_MARGIN:g}s);"
               " process group killed", "detail": ""}
    else:
        res = read_result(result_path, p.returncode)
    finally:
        with RUNNING_LOCK:
            RUNNING.discard(p)
    dt = time.monotonic() - t0
    if res["ok"]:
        if not args.keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
        text = out.decode("utf-8", "replace").strip()
        if args.verbose and text:  # the figures tests print
            return True, dt, f"PASS {name} ({dt:.1f}s)\n{text}"
        return True, dt, f"PASS {name} ({dt:.1f}s)"
    report = [f"FAIL {name}: {res['reason']}"]
    if res["detail"]:
        report.append(res["detail"].rstrip())
    text = out.decode("utf-8", "replace").strip()
    if text:
        report.append("--- test output\n" + "\n".join(text.splitlines()[-20:]))
    report.append(f"--- kept {tmpdir}")
    tails = log_tails(tmpdir)
    if tails:
        report.append(tails)
    return False, dt, "\n".join(report)


def main() -> int:
    ap = argparse.ArgumentParser(description="mxgate end-to-end tests")
    ap.add_argument("--binary", required=True)
    ap.add_argument("-k", dest="filter", default=None,
                    help="only tests whose name contains this")
    ap.add_argument("-j", dest="jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ap.add_argument("-v", dest="verbose", action="store_true",
                    help="print what passing tests print (their figures)")
    ap.add_argument("--keep", action="store_true",
                    help="keep temp dirs of passing tests too")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-tmp", help=argparse.SUPPRESS)
    ap.add_argument("--child-limit", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--child-result", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        return child_main(args.binary, json.loads(args.child), args.child_tmp,
                          args.child_limit, args.child_result)

    tests = discover()
    if args.filter:
        tests = [t for t in tests if args.filter in t[0]]
    if args.list:
        for name, _ in tests:
            print(name)
        return 0
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        print(f"run.py: {args.binary}: not an executable file", file=sys.stderr)
        print(f"e2e: 0 passed, {len(tests)} failed")
        return 1

    passed = failed = 0
    lock = threading.Lock()
    t0 = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, args.jobs))
    futs = [pool.submit(run_one, args, n, s) for n, s in tests]
    try:
        for fut in concurrent.futures.as_completed(futs):
            ok, _, report = fut.result()
            with lock:
                print(report, flush=True)
                passed += ok
                failed += not ok
    except KeyboardInterrupt:
        for f in futs:
            f.cancel()
        with RUNNING_LOCK:
            for p in list(RUNNING):
                kill_group(p)
        print("run.py: interrupted", file=sys.stderr)
        failed += sum(1 for f in futs if not f.done() or f.cancelled())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    print(f"(total {time.monotonic() - t0:.1f}s)", file=sys.stderr)
    print(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
