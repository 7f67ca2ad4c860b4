# SPDX-License-Identifier: Apache-2.0
"""Stopping a Weft binary the way its users do, and holding it to a clean end.

stop_cleanly() sends SIGTERM (the kubelet's stop; the proxy drains on it),
waits, and fails the test when the process had to be killed, exited with
anything but 0, or left a sanitizer report in its log: ASan and LSan report
at exit only, so a process that is killed is never checked for leaks.

    from procs import stop_cleanly
    text = stop_cleanly(proc, log_path)   # the log's text, for more assertions
    stop_cleanly(proc, log_path, sig=None) # already signalled: only wait and check
"""
import os
import signal
import subprocess

# Lines that only a sanitizer writes: ASan/LSan errors, UBSan's runtime errors.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "SUMMARY: AddressSanitizer",
                   "SUMMARY: UndefinedBehaviorSanitizer", "runtime error:")


def sanitizer_report(text):
    """The first line of a sanitizer report in `text`, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line
    return None


def read_log(log):
    """`log` is a path, a callable returning text, or None."""
    if log is None:
        return ""
    if callable(log):
        return log()
    try:
        with open(log, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def stop_cleanly(proc, log=None, sig=signal.SIGTERM, timeout=30, expect_code=0):
    """Signals `proc` and asserts it exits by itself with `expect_code` and no
    sanitizer report. A process still running after `timeout` is killed and
    the test fails. sig=None sends nothing (the caller has signalled it, e.g.
    several processes at once). Returns the log's text."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if _own_group(proc) else proc.kill()
        proc.wait()
        raise AssertionError(f"pid {proc.pid} did not exit within {timeout}s of signal {sig or 'SIGTERM'} and was killed:\n"
                             + read_log(log)[-3000:])
    text = read_log(log)
    report = sanitizer_report(text)
    assert report is None, f"sanitizer report: {report}\n{text[-6000:]}"
    assert code == expect_code, f"exit status {code}, expected {expect_code}:\n{text[-3000:]}"
    return text


def _own_group(proc):
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False
