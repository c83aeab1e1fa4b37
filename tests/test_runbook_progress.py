"""Runbook runs report their progress, keep the kernel off TCP (no transport warning), and a failing
runbook names its step, its cell and where its executed output is."""

from __future__ import annotations

import nbformat

from upgrade_infra.docsite import publish, runbooks
from upgrade_infra.operations.session import Session


def _notebook(path, fail: bool = False):
    nb = nbformat.v4.new_notebook()
    nb.cells += [nbformat.v4.new_markdown_cell("# Demo"), nbformat.v4.new_markdown_cell("## First step"),
                 nbformat.v4.new_code_cell("import time\ntime.sleep(1.2)"),
                 nbformat.v4.new_markdown_cell("## Second step"),
                 nbformat.v4.new_code_cell("raise RuntimeError('planted failure')" if fail else "x = 1")]
    nbformat.write(nb, path)
    return path


def test_progress_names_each_step_and_no_tcp_warning(tmp_path, capfd):
    seen: list[str] = []
    r = runbooks.execute(_notebook(tmp_path / "01-demo.ipynb"), tmp_path / "out", progress=seen.append)
    assert r.status == "passed", r.error
    assert "First step" in seen
    err = capfd.readouterr().err
    assert "without encryption" not in err and "IPKernelApp" not in err


def test_failing_runbook_names_step_cell_and_output(tmp_path):
    r = runbooks.execute(_notebook(tmp_path / "01-demo.ipynb", fail=True), tmp_path / "out")
    assert r.status == "failed"
    assert "step 'Second step'" in r.error and "RuntimeError: planted failure" in r.error
    assert f"output in {tmp_path / 'out' / 'demo.ipynb'}" in r.error
    assert "cell 8 of demo.ipynb" in r.error  # after the header and Papermill's two error cells
    nb = nbformat.read(tmp_path / "out" / "demo.ipynb", as_version=4)
    assert "planted failure" in str(nb.cells[7].outputs)


def test_publish_progress_prints_a_line_per_step_without_a_terminal(tmp_path, capsys):
    _notebook(tmp_path / "01-demo.ipynb")
    publish.run_all(Session(tmp_path / "stack.yaml", tmp_path / "state"), tmp_path, tmp_path / "reports")
    err = capsys.readouterr().err
    assert "[demo" in err and "First step" in err and "passed" in err


def test_kernel_shutdown_sends_no_sigint(tmp_path):
    """jupyter_client SIGINTs every kernel it shuts down, which made an idle ipykernel log "KeyboardInterrupt
    caught in kernel" on the run's stderr under load (CI, 2026-12-01). Our kernel manager shuts down without
    it: a real kernel that records any SIGINT it gets is shut down through it and recorded none."""
    import asyncio
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    mark = tmp_path / "sigint"

    async def run(cls) -> bool:
        # the handler goes in at kernel start (after ipykernel set SIGINT to be ignored while idle)
        line = f"import signal, pathlib; signal.signal(signal.SIGINT, lambda *a: pathlib.Path({str(mark)!r}).touch())"
        km = cls(kernel_name="python3")
        await km.start_kernel(extra_arguments=[f"--IPKernelApp.exec_lines={[line]!r}"])
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute("x = 1", reply=True, timeout=60)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
        await km.shutdown_kernel()
        got = mark.exists()
        mark.unlink(missing_ok=True)
        return got

    with tempfile.TemporaryDirectory(prefix="uinfra-k-") as sock:
        assert not asyncio.run(run(runbooks._kernel_manager_class(sock)))
    assert asyncio.run(run(AsyncKernelManager))  # the plain manager does send it: the test sees a SIGINT
