"""workers= / cluster=: the same DataFrame as the serial run, bounded memory, failures named by layer,
Ctrl-C clean, and Dask never imported by `import wwtune` (a local 2-worker Dask cluster where installed)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from ctrl_c import sigint_as_in_a_terminal
from safetensors.torch import save_file
from torch import nn

import wwtune
from wwtune.analyze_cli import main as analyze_main
from wwtune.compare_cli import main as compare_main
from wwtune.execution import LayerFailed, Task, analyze, check_execution, run_tasks
from wwtune.execution import local as local_mod
from wwtune.execution.plan import LARGE_M, make_plan, threads_for
from wwtune.execution.tasks import HeldTensor, ship
from wwtune.spectral.layers import FileTensor, weight_specs

HERE = Path(__file__).parent


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3),
        nn.Linear(120, 60),
        nn.Linear(60, 40),
        nn.Embedding(300, 32),
        nn.MultiheadAttention(48, 4),
        nn.Linear(40, 60),
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-shard safetensors folder (bf16 and float32 tensors) with its index."""
    out = tmp_path_factory.mktemp("sharded")
    g = torch.Generator().manual_seed(1)
    shards = {
        "model-00001-of-00002.safetensors": {
            "layers.0.q_proj.weight": torch.randn(96, 64, generator=g).to(torch.bfloat16),
            "layers.0.mlp.weight": torch.randn(160, 64, generator=g).to(torch.bfloat16),
        },
        "model-00002-of-00002.safetensors": {
            "layers.1.q_proj.weight": torch.randn(64, 64, generator=g),
            "layers.1.mlp.weight": torch.randn(64, 200, generator=g),
            "layers.1.norm.weight": torch.randn(64, generator=g),
        },
    }
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(out / name))
        weight_map.update(dict.fromkeys(tensors, name))
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return out


@pytest.mark.parametrize("extra", [{}, {"mp_fit": True, "randomize": True, "fit": "hill"}])
def test_workers_give_the_serial_dataframe_for_a_module(extra):
    model = _model()
    serial = wwtune.analyze(model, **extra)
    seen = []
    parallel = analyze(model, workers=2, progress=lambda d, t, n: seen.append((d, t, n)), **extra)
    pd.testing.assert_frame_equal(parallel, serial, check_exact=True)
    assert [d for d, _, _ in seen] == list(range(1, len(serial) + 1))
    assert sorted(n for _, _, n in seen) == sorted(serial["longname"])


def test_workers_give_the_serial_dataframe_for_sharded_safetensors(folder):
    serial = wwtune.analyze(folder, dtype="float32")
    pd.testing.assert_frame_equal(
        wwtune.analyze(folder, dtype="float32", workers="auto"), serial, check_exact=True
    )


def test_workers_read_their_own_tensors_from_the_shards(folder, monkeypatch):
    """The parent never reads a tensor: each worker (a fresh process) reads its own from the file."""

    def refuse(self):
        raise AssertionError(f"the parent read {self.key}")

    monkeypatch.setattr(FileTensor, "__call__", refuse)
    with pytest.raises(AssertionError, match="the parent read"):
        wwtune.analyze(folder)  # the serial run reads in this process: the patch bites
    df = analyze(folder, workers=2)
    assert len(df) == 4 and (df["status"] == "success").all()


def test_a_file_backed_spec_travels_as_path_and_key_and_an_in_memory_one_as_one_matrix(folder):
    spec = next(s for s in weight_specs(folder) if s.name == "layers.0.mlp")
    assert ship(spec) is spec and isinstance(spec.load, FileTensor)
    big = torch.randn(300, 40)
    view = [s for s in weight_specs({"a.weight": big[:100], "b.weight": big[100:]}) if s.name == "b"][0]
    sent = ship(view).load
    assert isinstance(sent, HeldTensor)
    assert sent.tensor.untyped_storage().nbytes() == 200 * 40 * 4  # not the 300-row storage
    assert torch.equal(sent.tensor, big[100:])


def test_at_most_one_matrix_per_worker_is_in_flight(monkeypatch):
    shipped = []

    def counting_ship(arg):
        shipped.append(arg)
        return ship(arg)

    monkeypatch.setattr(local_mod, "ship", counting_ship)
    model = nn.Sequential(*[nn.Linear(32 + i, 32) for i in range(8)])
    in_flight = []
    analyze(model, workers=2, progress=lambda done, total, name: in_flight.append(len(shipped) // 2 - done))
    # each task ships (spec, opts): len(shipped) // 2 tasks sent; at most 2 were out when one came back
    assert max(in_flight) <= 2 - 1 and len(in_flight) == 8


def test_compare_with_workers_equals_serial(folder, tmp_path):
    model = _model()
    other = _model()
    with torch.no_grad():
        other[1].weight.mul_(1.5)
    serial = wwtune.compare(model, other, keep_evals=False)
    pd.testing.assert_frame_equal(wwtune.compare(model, other, workers=2), serial, check_exact=True)
    pd.testing.assert_frame_equal(wwtune.compare(folder, folder, workers=2), wwtune.compare(folder, folder))


def test_a_raising_task_is_named_by_its_layer():
    from execution_tasks import fail_on

    tasks = [Task(f"layer{i}", fail_on, (i, 3)) for i in range(6)]
    with pytest.raises(
        LayerFailed, match=r"layer 'layer3': failed in a worker process: ValueError: cannot take 3"
    ):
        run_tasks(tasks, workers=2)


def test_a_killed_worker_is_named_by_its_layer():
    from execution_tasks import die_on, square

    assert run_tasks([Task(f"t{i}", square, (i,)) for i in range(5)], workers=2) == [0, 1, 4, 9, 16]
    tasks = [Task(f"layer{i}", die_on, (i, 4)) for i in range(6)]
    with pytest.raises(LayerFailed, match=r"layer 'layer4': the worker process \(pid \d+\) died .*SIGKILL"):
        run_tasks(tasks, workers=2)


def test_ctrl_c_stops_every_worker(tmp_path):
    """SIGINT to a running parallel analysis: the parent exits on KeyboardInterrupt, no worker survives."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from torch import nn
        from wwtune.execution import analyze

        def children():
            me = str(os.getpid())
            stats = [p / "stat" for p in Path("/proc").iterdir() if p.name.isdigit()]
            ppid = lambda s: s.read_text().rsplit(")", 1)[1].split()[1] if s.exists() else ""
            return [s.parent.name for s in stats if ppid(s) == me]

        def progress(done, total, name):
            if done == 1:
                print(" ".join(children()), flush=True)
                signal.pause()  # waits here for the test's SIGINT

        try:
            analyze(nn.Sequential(*[nn.Linear(64, 64) for _ in range(20)]), workers=2, progress=progress)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,  # a suite started in the background would pass SIGINT ignored
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the analysis never reported its first layer"
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert proc.stdout.read().strip() == "interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert not alive, f"worker processes left running: {alive}"


def test_a_script_without_a_main_guard_can_use_workers(tmp_path):
    """Workers are fresh interpreters: the user's script is not re-run in them (multiprocessing's spawn
    would re-import it and refuse to start processes while bootstrapping)."""
    script = tmp_path / "user_script.py"
    script.write_text(
        "import torch\nfrom torch import nn\nimport wwtune\n"
        "torch.manual_seed(0)\nmodel = nn.Sequential(nn.Linear(30, 20), nn.Linear(20, 10))\n"
        "print('runs', flush=True)\n"
        "print(wwtune.analyze(model, workers=2).equals(wwtune.analyze(model)))\n"
    )
    # bit-identical needs the serial run on the workers' one BLAS thread (docs/distributed-analysis.md);
    # the environment of the test run may set any thread count, so the script's is pinned here
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["runs", "True"]


def test_plan_auto_is_bounded_by_cores_layers_and_memory():
    gib = 1 << 30
    assert make_plan("auto", [gib] * 10, cores=8, memory=64 * gib).processes == 8
    assert make_plan("auto", [gib] * 3, cores=8, memory=64 * gib).processes == 3
    assert make_plan("auto", [gib] * 10, cores=8, memory=6 * gib).processes == 3  # half of 6 GiB, 1 GiB each
    assert make_plan("auto", [64 * gib], cores=8, memory=6 * gib).processes == 1
    assert make_plan(4, [gib] * 2, cores=8).processes == 2
    assert threads_for(LARGE_M - 1, 1, 8) == 1
    assert threads_for(LARGE_M, 2, 8) == 4 and threads_for(LARGE_M, 8, 8) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "workers must be a positive integer or 'auto' but got 0"),
        ({"workers": "many"}, "workers must be a positive integer or 'auto' but got 'many'"),
        ({"cluster": "localhost"}, "cluster must be a Dask scheduler address"),
        ({"workers": 2, "cluster": "tcp://127.0.0.1:8786"}, "not both"),
    ],
)
def test_bad_execution_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_execution(**kwargs)
    with pytest.raises(ValueError, match=match):
        wwtune.analyze(nn.Linear(20, 10), **kwargs)


def test_cli_workers_writes_the_serial_csv(folder, tmp_path, capsys):
    assert analyze_main([str(folder), "--csv", str(tmp_path / "a.csv"), "-q"]) == 0
    assert analyze_main([str(folder), "--csv", str(tmp_path / "b.csv"), "-q", "--workers", "2"]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert analyze_main([str(folder), "--workers", "0"]) == 2
    assert "--workers: must be a positive integer or 'auto'" in capsys.readouterr().err
    assert compare_main([str(folder), str(folder), "--csv", str(tmp_path / "c.csv"), "-q"]) == 0
    assert (
        compare_main([str(folder), str(folder), "--csv", str(tmp_path / "d.csv"), "-q", "--workers", "2"])
        == 0
    )
    assert (tmp_path / "c.csv").read_text() == (tmp_path / "d.csv").read_text()
    assert analyze_main([str(folder), "--workers", "2", "--cluster", "tcp://127.0.0.1:1"]) == 2
    assert "not allowed with argument --workers" in capsys.readouterr().err


def test_import_wwtune_does_not_import_the_cluster_engine():
    engines = "{'dask', 'distributed', 'ray'}"
    code = f"import sys, wwtune; print(sorted({{m.split('.')[0] for m in sys.modules}} & {engines}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- a throw-away Dask cluster: 2 worker processes on 127.0.0.1 -------------------------------------------


@pytest.fixture(scope="module")
def dask_address():
    try:
        from distributed import LocalCluster
    except ImportError:
        if os.environ.get("WWTUNE_REQUIRE_SYSTEM_TESTS"):
            pytest.fail("WWTUNE_REQUIRE_SYSTEM_TESTS is set but Dask distributed is not installed")
        pytest.skip("cluster tests need the extra: pip install 'wwtune[cluster]'")
    import dask

    # a worker killed once fails its task at once (Dask's default retries it on 3 more workers)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
    ):
        yield cluster.scheduler_address


@pytest.mark.timeout(300)
def test_cluster_gives_the_local_dataframe(dask_address, folder):
    assert dask_address.startswith("tcp://127.0.0.1:")
    model = _model()
    pd.testing.assert_frame_equal(
        analyze(model, cluster=dask_address), wwtune.analyze(model), check_exact=True
    )
    pd.testing.assert_frame_equal(
        analyze(folder, cluster=dask_address), analyze(folder, workers=2), check_exact=True
    )
    other = _model()
    with torch.no_grad():
        other[2].weight.mul_(0.5)
    pd.testing.assert_frame_equal(
        wwtune.compare(model, other, cluster=dask_address), wwtune.compare(model, other), check_exact=True
    )


@pytest.mark.timeout(300)
def test_cluster_names_a_failed_layer(dask_address):
    from execution_tasks import fail_on

    tasks = [Task(f"layer{i}", fail_on, (i, 2)) for i in range(4)]
    with pytest.raises(
        LayerFailed, match=r"layer 'layer2': failed on the cluster: ValueError: cannot take 2"
    ):
        run_tasks(tasks, cluster=dask_address)


@pytest.mark.timeout(300)
def test_cluster_names_the_layer_whose_worker_died(dask_address):
    from execution_tasks import die_on

    tasks = [Task(f"layer{i}", die_on, (i, 1)) for i in range(3)]
    with pytest.raises(LayerFailed, match=r"layer 'layer1': failed on the cluster: KilledWorker"):
        run_tasks(tasks, cluster=dask_address)


def test_docstring_example_runs():
    import doctest

    import wwtune.execution as execution

    result = doctest.testmod(execution, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the degenerate mode is for machines without a GPU")
def test_gpu_check_says_no_gpu_and_exits_0_without_one():
    script = HERE.parent / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("no GPU:")
    strict = subprocess.run([sys.executable, str(script), "--require-gpu"], capture_output=True, timeout=300)
    assert strict.returncode == 3
