"""@tilt_venv: builds <workspace>/.venv (tools/ensure_venv.sh) before any Python runs.

Bazel runs repository rules outside the sandbox, once, and again when a file
they read changes (requirements.txt, ensure_venv.sh) or PYTHON does. The
toolchain's py_runtime (//tools/python:BUILD) lists this repository's stamp in
its files, so every py_binary/py_test depends on it: `bazel test //...` on a
fresh clone creates .venv here, where the workspace is writable, instead of in
a read-only test sandbox.
"""

def _tilt_venv_impl(ctx):
    req = ctx.path(Label("@//:requirements.txt"))
    script = ctx.path(Label("@//tools:ensure_venv.sh"))
    ctx.read(req)  # Rerun when requirements.txt changes.
    ctx.read(script)
    result = ctx.execute(["bash", str(script)], timeout = 3600, quiet = False)
    if result.return_code != 0:
        fail("tools/ensure_venv.sh failed (exit %d); run it by hand to see why" %
             result.return_code)
    ctx.file("stamp.txt", ctx.read(req))
    ctx.file("BUILD.bazel", """exports_files(["stamp.txt"], visibility = ["//visibility:public"])
""")

tilt_venv = repository_rule(
    implementation = _tilt_venv_impl,
    environ = ["PYTHON"],
    local = True,
)
