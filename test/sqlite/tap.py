"""tap.py -- a small TAP printer for the SQLite suite.

Test functions are registered with @test; each may make several checks with
check(cond, name) (or skip(name, reason)).  Every check prints one line "ok N - name" or
"not ok N - name" (with "# " diagnostics after a failure); a test function
that raises prints one "not ok" line naming the exception.  run() prints the
plan "1..N" at the end and returns the process exit status (1 on any failure).
"""
import sys
import traceback

_tests = []
_count = 0
_failed = 0


def test(fn):
    """Registers fn as a test, run in registration order."""
    _tests.append(fn)
    return fn


def _line(ok, name, diag=None):
    global _count, _failed
    _count += 1
    if not ok:
        _failed += 1
    print(("ok" if ok else "not ok") + " %d - %s" % (_count, name.replace("\n", " ")))
    if not ok and diag:
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return ok


def check(cond, name, diag=None):
    """One assertion: prints its TAP line; returns cond."""
    return _line(bool(cond), name, diag)


def equal(got, want, name):
    """check(got == want) with both values shown on failure."""
    return _line(got == want, name, "got:  %r\nwant: %r" % (got, want))


def raises(fn, fragment, name, exc=Exception):
    """Checks that fn() raises exc whose message contains fragment."""
    try:
        got = fn()
    except exc as e:
        return _line(fragment in str(e), name, "message: %r\nwanted fragment: %r" % (str(e), fragment))
    return _line(False, name, "no error; returned %r" % (got,))


def skip(name, reason):
    """A check that cannot run here: prints "ok N - name # skip reason"."""
    global _count
    _count += 1
    print("ok %d - %s # skip %s" % (_count, name.replace("\n", " "), reason.replace("\n", " ")))
    sys.stdout.flush()
    return True


def run():
    """Runs every registered test; returns the exit status."""
    for fn in _tests:
        try:
            fn()
        except Exception as e:  # a test that crashes is one failure, named
            _line(False, "%s raised %s: %s" % (fn.__name__, type(e).__name__, e),
                  traceback.format_exc())
    print("1..%d" % _count)
    return 1 if _failed else 0
