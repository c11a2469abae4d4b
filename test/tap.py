# test/tap.py -- TAP lines for the Python parts of test/suites/*.sh (the shell side is
# test/tap.sh):  sys.path.insert(0, "test"); from tap import check, finish
import sys

n = failed = 0


def check(ok, name, note=None):
    """Prints "ok N - name" or "not ok N - name" and, on a failure, the note's first lines."""
    global n, failed
    n += 1
    failed += not ok
    print(("ok" if ok else "not ok") + " %d - %s" % (n, name))
    if not ok and note is not None:
        for line in str(note).splitlines()[:10]:
            print("# " + line)


def finish():
    """The plan line; exits non-zero when a check failed."""
    print("1..%d" % n)
    sys.exit(1 if failed else 0)
