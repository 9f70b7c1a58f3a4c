"""`python -m dpo` commands as real processes without paying the imports each time.

    python -m tests.dpo.fork_server numpy|torch

imports the command line, matplotlib and (for torch) PyTorch once, prints "ready", then for
each JSON line {"argv": [...], "stdout": PATH, "stderr": PATH} on stdin forks a child that runs
`dpo.cli.main(argv)` with its output in those files, prints the child's pid, waits for it, and
prints its exit status (negative: the signal that ended it). The parent runs no computation
before forking, so no thread pool is copied into a child half-way. The fault-injection tests
kill these children; a fresh interpreter per kill would spend seconds importing PyTorch.
"""

import json
import os
import sys


def serve(backend):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imported here so that no child pays for it)

    import dpo.cli

    if backend == "torch":
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401  (torch.optim imports it on first use)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            try:
                code = dpo.cli.main(request["argv"])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
