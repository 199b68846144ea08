"""The Dask backend: bit-identical to the CPU backend, through a client, a scheduler address
and the command line."""

import logging

import pytest
import xarray as xr

import mcmtj
from mcmtj.run.executors import DaskExecutor
from mcmtj.run.store import store_status

distributed = pytest.importorskip("distributed")

TINY = {
    "network.source": "train", "network.n_solutions": 3, "network.epochs": 5,
    "write.mode": "fixed", "write.error_rate": 0.05, "defects.stuck_ap": 0.01,
    "network.gnorm": [0.8, 1.2], "sweep.device.diameter": [4e-8, 8e-8], "run.instances": 20,
}


def _no_created(ds):
    ds = ds.copy()
    ds.attrs.pop("created", None)
    return ds


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


def test_dask_workers_give_the_cpu_dataset(cluster, tmp_path):
    study = mcmtj.Study().replace(**TINY)
    prep = mcmtj.prepare(study)
    cpu = mcmtj.simulate(study, seed=9, prepared=prep)
    blocks = []
    with distributed.Client(cluster) as client:
        on_dask = mcmtj.simulate(study, seed=9, prepared=prep, executor=client, chunk_size=3,
                                 solution_block=2, on_chunk=lambda *a: blocks.append(a))
        ran_on = set(client.run(lambda: 1))
    assert len(blocks) == 2 * 2 * 7 and len(ran_on) == 2
    xr.testing.assert_identical(_no_created(on_dask), _no_created(cpu))

    # by scheduler address, streamed into a store
    with DaskExecutor(cluster.scheduler_address, max_in_flight=2) as ex:
        stored = mcmtj.simulate(study, seed=9, prepared=prep, executor=ex,
                                store=tmp_path / "d.zarr", chunk_size=6)
    assert store_status(tmp_path / "d.zarr").complete
    xr.testing.assert_identical(stored, _no_created(cpu))


def test_unreachable_scheduler_is_a_clear_error():
    study = mcmtj.Study().replace(**TINY)
    with pytest.raises(OSError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        with DaskExecutor("tcp://127.0.0.1:9", timeout=1) as ex:
            mcmtj.simulate(study, seed=1, instances=2, executor=ex)


def test_cli_dask_backend_on_a_local_cluster(tmp_path):
    from mcmtj.cli import main

    path = tmp_path / "s.toml"
    path.write_text('[network]\nsource = "train"\nn_solutions = 2\nepochs = 5\n'
                    '[run]\ninstances = 12\n')
    assert main(["run", str(path), "-o", str(tmp_path / "d.zarr"), "--backend", "dask",
                 "--workers", "2", "--chunk-size", "4", "--seed", "2", "--quiet"]) == 0
    assert main(["run", str(path), "-o", str(tmp_path / "c.zarr"), "--chunk-size", "4",
                 "--seed", "2", "--quiet"]) == 0
    xr.testing.assert_identical(mcmtj.open_results(tmp_path / "d.zarr"),
                                mcmtj.open_results(tmp_path / "c.zarr"))


@pytest.mark.slow  # two clusters, a worker restart: ~30 s on 2 cores
def test_a_killed_worker_is_retried_and_a_lost_cluster_is_one_line(tmp_path):
    import os

    from mcmtj.run.executors import ClusterLost

    study = mcmtj.Study().replace(**TINY)
    prep = mcmtj.prepare(study)
    cpu = _no_created(mcmtj.simulate(study, seed=9, prepared=prep))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.CRITICAL) as c:
        with distributed.Client(c) as client:
            pids = []

            def kill_the_worker_once(point, start, n):
                if not pids:  # its nanny starts a new one; the lost blocks are rerun
                    pids.extend(client.run(os.getpid).values())
                    try:
                        client.run(os._exit, 1)
                    except Exception:  # noqa: BLE001 - the worker dies before it answers
                        pass

            out = mcmtj.simulate(study, seed=9, prepared=prep, executor=client, chunk_size=3,
                                 store=tmp_path / "killed.zarr", on_chunk=kill_the_worker_once)
            assert pids and list(client.run(os.getpid).values()) != pids
    xr.testing.assert_identical(out.load(), cpu)

    path = tmp_path / "lost.zarr"
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    try:
        def close_the_cluster(point, start, n):
            if cluster.status.name != "closed":
                cluster.close()

        with pytest.raises(ClusterLost) as err:
            mcmtj.simulate(study, seed=9, prepared=prep, executor=client, chunk_size=3,
                           store=path, on_chunk=close_the_cluster)
    finally:
        client.close()
        cluster.close()
    message = str(err.value)
    assert "\n" not in message and message.startswith("the dask cluster is gone")
    assert f"kept in {path}; resume with `mcmtj run STUDY -o {path} --resume`" in message
    resumed = mcmtj.simulate(study, seed=9, prepared=prep, store=path, resume=True)
    xr.testing.assert_identical(resumed.load(), cpu)
