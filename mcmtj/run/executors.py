"""Executors: who runs the blocks of a simulation (design.md "engine", style.md "injected").

:func:`mcmtj.simulate` cuts a run into :class:`Task` s -- (sweep point, solution block,
instance chunk) -- and hands them with the :class:`~mcmtj.run.block.Plan` to an executor,
which yields ``(task, block)`` pairs in any order as they complete; ``block`` is what
:func:`mcmtj.run.block.run_block` returns for the task. Because ``run_block`` is a pure
function of the plan and the task, and random streams are keyed by the global
instance index, every executor gives bit-identical results.

Executors:

- :class:`SerialExecutor` (``"cpu"``, the default): this process, the numba kernel
  parallel over instances with its own threads.
- :class:`DaskExecutor` (``"dask"``): a ``dask.distributed`` cluster -- a
  ``LocalCluster`` of worker processes by default, or an existing scheduler by address
  (the way past one machine). The plan is shipped to every worker once.
- :class:`PoolExecutor`: any pool object with ``submit`` (``concurrent.futures``) or
  ``map`` (``multiprocessing.Pool``, emcee/schwimmbad-style pools).

:func:`as_executor` turns what a user passes (``None``, a name, a ``distributed.Client``,
a pool) into one of these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numba

from mcmtj.run.block import _threads, run_block
from mcmtj.run.cuda import CudaExecutor

__all__ = ["Task", "SerialExecutor", "DaskExecutor", "PoolExecutor", "as_executor", "run_task",
           "ClusterLost", "WORKER_LOSS_RETRIES"]


@dataclass(frozen=True)
class Task:
    """One block of work: instances ``start .. start + n - 1`` of solutions
    ``sol_start .. sol_stop - 1`` at flat sweep point ``point``."""

    point: int
    sol_start: int
    sol_stop: int
    start: int
    n: int

    @property
    def n_instances(self) -> int:
        """Instances simulated by the task (solutions x instances)."""
        return (self.sol_stop - self.sol_start) * self.n


#: times a block is rerun after the worker running it died (dask's ``allowed-failures``)
WORKER_LOSS_RETRIES = 3


class ClusterLost(ConnectionError):
    """The Dask cluster went away (scheduler gone, workers lost beyond the retries) while
    blocks were running. A one-line message; a ``.zarr`` store keeps what was finished."""


# One kernel call at a time per process: a worker with several dask threads then runs
# each block with all the numba threads it was given instead of oversubscribing cores.
_KERNEL_LOCK = threading.Lock()


def _worker_threads(threads: int | dict | None) -> int | None:
    if isinstance(threads, int):
        return min(threads, numba.config.NUMBA_NUM_THREADS)
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    if isinstance(threads, dict) and worker.address in threads:
        return min(threads[worker.address], numba.config.NUMBA_NUM_THREADS)
    # a worker with k task threads on a machine with c cores: c // k numba threads each
    return max(1, numba.config.NUMBA_NUM_THREADS // max(1, int(worker.state.nthreads)))


def _cores() -> int:
    return numba.config.NUMBA_NUM_THREADS


def _threads_per_worker(client) -> dict[str, int]:
    """Numba threads for each worker: its machine's cores shared among the task threads
    of all workers on that machine."""
    workers = client.scheduler_info()["workers"]
    cores = client.run(_cores)
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info["nthreads"])
    return {addr: max(1, cores.get(addr, 1) // max(1, per_host[info["host"]]))
            for addr, info in workers.items()}


def run_task(plan, task: Task, threads: int | dict | None = None) -> dict:
    """Run one task; what every executor calls, in this process or on a worker.

    Parameters
    ----------
    plan : mcmtj.run.block.Plan
    task : Task
    threads : int or dict, optional
        Numba threads for the kernel, or a dict worker address -> threads. Default:
        numba's setting, or on a Dask worker the machine's cores divided by the
        worker's task threads.

    Returns
    -------
    dict
        :func:`mcmtj.run.block.run_block` of the task.
    """
    with _KERNEL_LOCK, _threads(_worker_threads(threads)):
        return run_block(plan, task.point, task.sol_start, task.sol_stop, task.start, task.n)


def _run_pair(plan, threads, task):
    return task, run_task(plan, task, threads)


class SerialExecutor:
    """Run the tasks one after the other in this process (numba threads inside each).

    Parameters
    ----------
    threads : int, optional
        Numba threads (default: numba's current setting).
    """

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, plan, tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        """Yield ``(task, block)`` for every task, in order."""
        for task in tasks:
            yield task, run_task(plan, task, self.threads)

    def close(self) -> None:
        """Nothing to release."""


class PoolExecutor:
    """Run the tasks on a user's pool: anything with ``submit`` or ``map``.

    Parameters
    ----------
    pool : object
        A ``concurrent.futures.Executor`` (``submit``; results are taken as they
        complete) or a pool with ``map(func, iterable)`` such as ``multiprocessing.Pool``
        (called on windows of tasks, so memory stays bounded). Process pools pickle the
        plan with every task.
    threads : int, optional
        Numba threads per task.
    max_in_flight : int, optional
        Tasks submitted but not yet consumed (default: 2 x ``os.cpu_count()``).
    """

    def __init__(self, pool, threads: int | None = None, max_in_flight: int | None = None):
        if not (hasattr(pool, "submit") or hasattr(pool, "map")):
            raise TypeError(f"executor {pool!r} has neither submit() nor map()")
        self.pool = pool
        self.threads = threads
        self.max_in_flight = max_in_flight or 2 * (os.cpu_count() or 1)

    def run(self, plan, tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        """Yield ``(task, block)`` as tasks complete."""
        import functools

        func = functools.partial(_run_pair, plan, self.threads)
        it = iter(tasks)
        if hasattr(self.pool, "submit"):
            from concurrent.futures import FIRST_COMPLETED, wait

            pending = set()
            try:
                for task in it:
                    pending.add(self.pool.submit(func, task))
                    if len(pending) >= self.max_in_flight:
                        break
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
                        task = next(it, None)
                        if task is not None:
                            pending.add(self.pool.submit(func, task))
            finally:
                for fut in pending:
                    fut.cancel()
            return
        while True:
            window = [t for _, t in zip(range(self.max_in_flight), it, strict=False)]
            if not window:
                return
            yield from self.pool.map(func, window)

    def close(self) -> None:
        """The pool belongs to the caller: nothing is closed."""


class DaskExecutor:
    """Run the tasks on a ``dask.distributed`` cluster.

    Each task is one :func:`run_task` call on a worker; the plan is one task of its
    own, fetched by every worker once (recomputed by the scheduler if its worker dies).
    Results come back to this process as they complete (they are per-instance scalars:
    64 bytes per instance for the default variables) and are written or stored here, so
    workers need no shared file system.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Default: start a
        ``LocalCluster`` of worker processes on this machine, closed again by
        :meth:`close`.
    client : distributed.Client, optional
        An existing client to use instead (not closed by :meth:`close`).
    n_workers : int, optional
        Workers of the ``LocalCluster`` (default ``min(4, cores)``), one task thread
        each.
    threads : int, optional
        Numba threads per task. Default: each machine's cores divided among the task
        threads of the workers on it (so two one-thread workers on a 16-core machine run
        8 numba threads each; start one worker per machine with ``--nthreads 1`` to give
        each block all cores).
    max_in_flight : int, optional
        Tasks submitted and not yet consumed (default: 2 x the cluster's task threads,
        at least 4); bounds the memory of results waiting to be stored.
    timeout : float, default 30
        Seconds to wait for the scheduler at ``scheduler``.
    worker_loss_retries : int, default :data:`WORKER_LOSS_RETRIES` (3)
        A block whose worker dies (killed, out of memory, machine lost) is rerun on
        another worker up to this many times (the ``LocalCluster``'s
        ``distributed.scheduler.allowed-failures``; a scheduler given by address uses its
        own setting). Beyond that, or when the scheduler or every worker is gone,
        :meth:`run` raises :class:`ClusterLost` (one line); blocks already stored are
        kept and ``resume`` finishes the run.

    Examples
    --------
    >>> from mcmtj.run.executors import DaskExecutor
    >>> with DaskExecutor(n_workers=2) as ex:          # doctest: +SKIP
    ...     ds = mcmtj.simulate(study, executor=ex)
    """

    def __init__(self, scheduler: str | None = None, *, client=None, n_workers: int | None = None,
                 threads: int | None = None, max_in_flight: int | None = None,
                 timeout: float = 30.0, worker_loss_retries: int = WORKER_LOSS_RETRIES):
        if scheduler is not None and client is not None:
            raise ValueError("give either scheduler or client, not both")
        if n_workers is not None and n_workers < 1:
            raise ValueError(f"n_workers = {n_workers} is out of range: must be >= 1")
        if threads is not None and threads < 1:
            raise ValueError(f"threads = {threads} is out of range: must be >= 1")
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.threads = threads
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        if worker_loss_retries < 0:
            raise ValueError(f"worker_loss_retries = {worker_loss_retries} is out of range: "
                             "must be >= 0")
        self.worker_loss_retries = worker_loss_retries
        self._client = client
        self._owned = []

    @property
    def client(self):
        """The ``distributed.Client``; starts the cluster on first use."""
        if self._client is None:
            try:
                from distributed import Client, LocalCluster
            except ImportError:
                raise ImportError("the dask backend needs dask.distributed: "
                                  "pip install 'mcmtj[dask]'") from None
            if self.scheduler is not None:
                try:
                    self._client = Client(self.scheduler, timeout=self.timeout)
                except OSError as exc:
                    raise OSError(f"cannot reach the dask scheduler at {self.scheduler}: "
                                  f"{exc}") from None
                self._owned.append(self._client)
            else:
                n = self.n_workers or max(1, min(4, numba.config.NUMBA_NUM_THREADS))
                import dask

                with dask.config.set({"distributed.scheduler.allowed-failures":
                                      self.worker_loss_retries}):
                    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=":0",
                                           silence_logs=logging.ERROR)
                self._owned.append(cluster)
                self._client = Client(cluster)
                self._owned.append(self._client)
        return self._client

    def _window(self, client) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        nthreads = sum(client.nthreads().values()) or 1
        return max(4, 2 * nthreads)

    def run(self, plan, tasks: Iterable[Task]) -> Iterator[tuple[Task, dict]]:
        """Yield ``(task, block)`` as tasks complete on the workers."""
        from distributed import as_completed

        client = self.client
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        threads = self.threads if self.threads is not None else _threads_per_worker(client)
        run_id = uuid.uuid4().hex[:8]
        # the plan as a task, not scattered data: scattered data dies with the worker
        # holding it (its dependents are then cancelled, "reason: unknown"), while a
        # task's result is recomputed by the scheduler on another worker
        plan_future = client.submit(_identity, plan, key=f"mcmtj-plan-{run_id}", pure=False)
        pending = {}
        completed = as_completed()

        def submit(task):
            key = f"mcmtj-{run_id}-{task.point}-{task.sol_start}-{task.start}"
            fut = client.submit(run_task, plan_future, task, threads, key=key, pure=False)
            pending[fut.key] = task
            completed.add(fut)

        try:
            submit(first)
            for _, task in zip(range(self._window(client) - 1), tasks, strict=False):
                submit(task)
            for fut in completed:
                task = pending.pop(fut.key)
                block = _result(fut, task, self.worker_loss_retries)
                fut.release()
                nxt = next(tasks, None)
                if nxt is not None:
                    submit(nxt)
                yield task, block
        finally:
            # best effort: with the cluster gone, cancelling fails too, and must not hide
            # the error that says so
            with contextlib.suppress(Exception):
                client.cancel([*completed.futures, plan_future])

    def close(self) -> None:
        """Close the client and the ``LocalCluster`` this executor started."""
        while self._owned:
            self._owned.pop().close()
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _identity(value):
    return value


def _result(fut, task: Task, retries: int):
    """A future's block; losing the cluster becomes one :class:`ClusterLost` line."""
    from distributed import KilledWorker

    try:
        return fut.result()
    except KilledWorker:
        raise ClusterLost(f"the dask workers running block (point {task.point}, instances "
                          f"{task.start}-{task.start + task.n - 1}) died {retries + 1} times "
                          "(out of memory? killed?)") from None
    except Exception as exc:
        # the scheduler connection lost, the cluster closed, every worker gone: dask
        # cancels the futures (CancelledError, FutureCancelledError) or fails to talk
        # (CommClosedError, an OSError)
        if fut.status in ("cancelled", "lost") or isinstance(exc, (OSError, TimeoutError)) \
                or "cancel" in type(exc).__name__.lower():
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterLost(f"the dask cluster is gone ({reason})") from None
        raise


def as_executor(executor=None, threads: int | None = None):
    """Turn what :func:`mcmtj.simulate` was given into an executor.

    Parameters
    ----------
    executor : None, str, executor, distributed.Client or pool
        ``None`` or ``"cpu"``: :class:`SerialExecutor`; ``"dask"``: a new
        :class:`DaskExecutor` on a ``LocalCluster``; a ``distributed.Client``: a
        :class:`DaskExecutor` on it; an object with ``run(plan, tasks)``: used as it is;
        anything else with ``submit`` or ``map``: a :class:`PoolExecutor`.
    threads : int, optional
        Numba threads per task, for executors made here.

    Returns
    -------
    executor, bool
        The executor and whether the caller made it here (and must close it).
    """
    if executor is None or executor == "cpu":
        return SerialExecutor(threads), True
    if isinstance(executor, str):
        if executor == "dask":
            return DaskExecutor(threads=threads), True
        if executor == "cuda":
            return CudaExecutor(), True
        raise ValueError(f"executor = {executor!r} is not allowed: must be 'cpu', 'dask', "
                         "'cuda', an executor, a distributed.Client or a pool with submit() or "
                         "map()")
    # a distributed.Client has a run() of its own (run a function on every worker)
    if type(executor).__name__ == "Client" and type(executor).__module__.startswith("distributed"):
        return DaskExecutor(client=executor, threads=threads), True
    if hasattr(executor, "run") and callable(executor.run):
        return executor, False
    return PoolExecutor(executor, threads=threads), True
