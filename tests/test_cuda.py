"""CUDA backend: the GPU kernel run in numba's CUDA simulator must give the CPU's instances.

The CPU blocks are computed here, in the test process (its compiled kernel is shared with
the other engine tests); the same plans are pickled to a child process started with
``NUMBA_ENABLE_CUDASIM=1`` (the simulator must be chosen before numba is imported), which
runs :func:`mcmtj.run.cuda.run_block_cuda` on them. Integer results must be identical,
accuracy and agreement too (they are counts over samples), other floating results
within 1e-6 relative. Problems are tiny: the simulator interprets every thread in Python.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mcmtj
from mcmtj.config import ConfigError
from mcmtj.run.block import make_plan, run_block
from mcmtj.run.cuda import run_block_cuda, unsupported_features

SIMULATOR_SCRIPT = textwrap.dedent("""
    import pickle, sys
    try:
        from numba import cuda
    except ImportError:
        sys.exit(3)
    import numpy as np
    from mcmtj.run.cuda import run_block_cuda
    from mcmtj.kernels import _cuda_kernels as CK
    from mcmtj.numerics import _rng

    with open(sys.argv[1], "rb") as f:
        jobs = pickle.load(f)
    blocks = [run_block_cuda(plan, *args) for plan, args in jobs]

    # device-function twins against the CPU functions they stand for
    words = np.array([0, 1, 2**31, 2**32 - 1, _rng._W_TAIL_LOW, _rng._W_TAIL_LOW + 1,
                      _rng._W_TAIL_HIGH - 1, _rng._W_TAIL_HIGH, 12345, 4000000000], np.uint32)
    words = np.concatenate([words, _rng.lane_words((1, 2), 0, 0, [0], 64)[0]])

    @cuda.jit
    def twins(words, normals, uniforms, ppf):
        i = cuda.grid(1)
        if i < words.size:
            w = np.uint64(words[i])
            normals[i] = CK.normal_from_word(w)
            uniforms[i] = CK.u32_to_uniform(w)
            ppf[i] = CK.normal_ppf(CK.u32_to_uniform(w))

    normals, uniforms, ppf = (np.zeros(words.size) for _ in range(3))
    twins[1, words.size](words, normals, uniforms, ppf)
    with open(sys.argv[2], "wb") as f:
        pickle.dump((blocks, words, normals, uniforms, ppf), f)
""")


PTX_SCRIPT = textwrap.dedent("""
    # Compile the real (non-simulator) kernel to PTX for an H100/H200 (sm_90) without a GPU:
    # the simulator never type-checks the kernel for the CUDA target, this does. Needs
    # numba-cuda with NVVM and NVRTC (pip install "cuda-toolkit[nvvm,nvrtc]==13.*").
    import pickle, sys, types
    try:
        from numba import cuda
        if getattr(cuda, "implementation", "") != "NVIDIA":
            raise ImportError("numba's built-in numba.cuda; this check needs numba-cuda")
        import numba.cuda.dispatcher as dispatcher
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        from cuda.bindings import nvrtc
        nvrtc.nvrtcVersion()
    except Exception as err:
        print(f"no NVVM/NVRTC here: {err}")
        sys.exit(3)
    import numpy as np
    from mcmtj.kernels import _cuda_kernels as CK

    # device functions ask the current device for its compute capability; there is none
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    with open(sys.argv[1], "rb") as f:
        plan = pickle.load(f)
    pk, pp = plan.packed, plan.points[0]
    S, n, G = pk.states.shape[0], 4, plan.gnorms.size
    args = (np.uint64(1), np.uint64(2), np.int64(0), np.int64(0), np.int64(n), pk.states,
            pk.layer_in, pk.layer_out, pk.bias, pp.fp, pp.ip, plan.gnorms, pk.X_eval,
            pk.y_eval, pp.sw_eval, pk.X_train, pk.y_train, pp.sw_train, pk.gram, pp.g0,
            pp.rmse_den, np.zeros((S, 1)), np.zeros((S, n, G)), np.zeros((S, 1, G)),
            np.zeros((S, n, G)), np.zeros((S, n)), np.zeros((S, n)), np.zeros((S, n)),
            np.zeros((S, 1)), np.zeros((S, n, CK.N_COUNTS), np.int32))
    kernel = CK._make_kernel(*CK.local_sizes(pk.layer_in, pk.layer_out))
    ptx, _ = cuda.compile_ptx(kernel, CK.kernel_signature(args), cc=(9, 0))
    assert ".entry" in ptx and "sm_90" in ptx
    print(len(ptx))
""")


def _nist(nist_dir, **overrides):
    return mcmtj.Study().replace(**{
        "network.source": "nist", "network.dataset": "nist", "network.nist_path": str(nist_dir),
        "network.eval_split": "test", "network.max_solutions": 2, **overrides})


WER_TABLE = """direction,voltage,pulse_width,wer
ap_to_p,0.40,1e-8,0.9
ap_to_p,0.50,1e-8,0.3
ap_to_p,0.60,1e-8,0.01
p_to_ap,0.45,1e-8,0.8
p_to_ap,0.55,1e-8,0.2
p_to_ap,0.65,1e-8,0.005
ap_to_p,0.40,1e-7,0.5
ap_to_p,0.60,1e-7,1e-4
p_to_ap,0.45,1e-7,0.4
p_to_ap,0.65,1e-7,1e-5
"""


def _cases(nist_dir, table_dir):
    """(name, plan, run_block args) covering every effect the CUDA path supports."""
    fixed = make_plan(_nist(
        nist_dir, **{"device.variation": True, "write.mode": "fixed", "write.error_rate": 0.05,
                     "defects.stuck_p": 0.04, "defects.stuck_ap": 0.04, "defects.short": 0.01,
                     "defects.open": 0.01, "network.gnorm": [0.5, 1.0, 1.5]}))
    physics = make_plan(_nist(
        nist_dir, **{"device.variation": True, "write.mode": "physics", "write.voltage": 0.45,
                     "device.beta": 2.0, "device.delta_sigma": 0.05, "device.jc_sigma": 0.05,
                     "write.initial": "random", "defects.stuck_p": 0.01,
                     "network.eval_train": True, "network.sensitivity": True,
                     "network.max_solutions": 1}))
    # stochastic reset (initial 'ap') near the switching threshold, die-to-die offsets of
    # every kind and both gradients
    reset_die = make_plan(_nist(
        nist_dir, **{"write.mode": "physics", "write.voltage": 0.55, "write.pulse_width": 10e-9,
                     "device.die_diameter_sigma": 3e-9, "device.die_resistance_area_sigma": 0.1,
                     "device.die_tmr_sigma": 0.1, "device.die_jc_sigma": 0.1,
                     "device.ra_gradient": 0.3, "device.diameter_gradient": -0.2,
                     "defects.stuck_ap": 0.02, "network.max_solutions": 1}))
    ideal = make_plan(_nist(nist_dir, **{"device.variation": False, "write.mode": "ideal"}))
    table_path = table_dir / "wer.csv"
    table_path.write_text(WER_TABLE)
    table = make_plan(_nist(
        nist_dir, **{"write.switching": "table", "write.wer_table": str(table_path),
                     "write.voltage": 0.52, "network.max_solutions": 1}))
    # binary 13 -> 6 -> 3 network with sign hidden units, defect rates varying per instance
    trained = mcmtj.Study().replace(**{
        "network.source": "train", "network.n_solutions": 2, "network.epochs": 20,
        "network.hidden_activation": "sign", "device.variation": True, "write.mode": "fixed",
        "write.error_rate": 0.02, "defects.stuck_p": 0.02, "defects.stuck_ap": 0.01,
        "defects.short": 0.005, "defects.dispersion": 0.2,
        "sweep.write.error_rate": [0.0, 0.1]})
    sweep = make_plan(trained)
    return [
        ("fixed writes, stuck/short/open, variation, gain grid", fixed, (0, 0, 2, 5, 4)),
        ("same, second solution alone, far instances", fixed, (0, 1, 2, 2**32 + 7, 3)),
        ("physics writes, random init, eval_train, sensitivity", physics, (0, 0, 1, 0, 4)),
        ("ideal writes, no variation", ideal, (0, 0, 2, 0, 2)),
        ("physics writes, stochastic reset, die offsets and gradients", reset_die,
         (0, 0, 1, 0, 4)),
        ("measured WER table, stochastic reset", table, (0, 0, 1, 0, 4)),
        ("trained sign network, Beta defect rates, sweep point 1", sweep, (1, 0, 2, 3, 4)),
    ]


def _simulate(jobs, tmp_path):
    src = tmp_path / "jobs.pkl"
    dst = tmp_path / "blocks.pkl"
    with open(src, "wb") as f:
        pickle.dump(jobs, f)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SIMULATOR_SCRIPT, str(src), str(dst)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:
        pytest.skip("numba.cuda is not importable: pip install numba-cuda")
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(dst, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def simulated(nist_dir, tmp_path_factory):
    cases = _cases(nist_dir, tmp_path_factory.mktemp("table"))
    cpu = [run_block(plan, *args) for _, plan, args in cases]
    result = _simulate([(plan, args) for _, plan, args in cases], tmp_path_factory.mktemp("cuda"))
    return cases, cpu, result


def _assert_same_instances(name, a, b):
    """CPU block ``a`` and CUDA block ``b``: integers and accuracies identical, floats 1e-6."""
    assert list(a) == list(b), name
    for key in a:
        assert a[key].shape == b[key].shape, (name, key)
        assert a[key].dtype == b[key].dtype, (name, key)
        if a[key].dtype.kind in "iu" or key in ("accuracy", "accuracy_train", "agreement"):
            np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}: {key}")
        else:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}: {key}")


def test_cuda_simulator_matches_cpu(simulated):
    cases, cpu, (gpu, *_) = simulated
    for (name, _, _), a, b in zip(cases, cpu, gpu, strict=True):
        _assert_same_instances(name, a, b)


def _real_gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return False
    from mcmtj.run.cuda import cuda_available

    return cuda_available()


@pytest.mark.skipif(not _real_gpu(), reason="needs an NVIDIA GPU (run on the device machine)")
@pytest.mark.parametrize("n_instances", [None, 20_000])
def test_real_gpu_matches_cpu(nist_dir, n_instances, tmp_path):
    """The same cases on a real GPU, in this process; then with many instances each."""
    for name, plan, (point, s0, s1, start, n) in _cases(nist_dir, tmp_path):
        args = (point, s0, s1, start, n_instances or n)
        _assert_same_instances(name, run_block(plan, *args), run_block_cuda(plan, *args))


def test_cases_exercise_the_effects(simulated):
    """Guard against a vacuous comparison: the cases do produce defects, errors, spread."""
    cases, cpu, _ = simulated
    fixed, _, physics, ideal, reset_die, table, sweep = cpu
    for key in ("n_stuck", "n_short", "n_open", "n_write_errors"):
        assert fixed[key].sum() > 0, key
    assert physics["n_write_errors"].sum() > 0
    assert np.ptp(physics["current_rmse"]) > 0
    assert (ideal["write_fidelity"] == 1.0).all()
    assert reset_die["n_reset_errors"].sum() > 0
    assert table["n_reset_errors"].sum() > 0 and table["n_write_errors"].sum() > 0
    assert len(np.unique(sweep["n_stuck"])) > 1
    assert np.ptp(fixed["accuracy"]) > 0


def test_device_twins_match_cpu(simulated):
    from mcmtj.numerics import _rng

    _, _, (_, words, normals, uniforms, ppf) = simulated
    expected = np.empty(words.size)
    _rng.normals_from_words(words, expected, np.empty(words.size, np.int64),
                             np.empty(words.size))
    np.testing.assert_allclose(normals, expected, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(uniforms, _rng.u32_to_uniform(words.astype(np.float64)))
    np.testing.assert_allclose(ppf, _rng.normal_ppf_np(uniforms), rtol=1e-13, atol=0)


UNSUPPORTED = [
    {"write.scheme": "v2"},
    {"write.verify": True},
    {"read.r_row": 2.0},
    {"read.r_col": 2.0},
    {"read.r_wire": 2.0},
    {"read.bias_tmr": True},
    {"read.noise": 0.01},
    {"read.offset_sigma": 0.1},
]


@pytest.mark.parametrize("override", UNSUPPORTED, ids=lambda o: next(iter(o)))
def test_unsupported_features_are_refused(nist_dir, override):
    try:
        study = _nist(nist_dir, **override)
    except ConfigError:
        pytest.skip(f"{next(iter(override))} is not a config field in this version")
    field = next(iter(override))
    assert any(text.startswith(field) for text in unsupported_features(study))
    plan = make_plan(study)
    with pytest.raises(NotImplementedError, match=field.replace(".", r"\.")):
        run_block_cuda(plan, 0, 0, 1, 0, 2)


def test_unsupported_sweep_point_is_refused(nist_dir):
    try:
        study = _nist(nist_dir, **{"sweep.read.r_row": [0.0, 2.0]})
    except ConfigError:
        pytest.skip("read.r_row is not a config field in this version")
    assert unsupported_features(study) == ["read.r_row = 2.0"]
    plan = make_plan(study)
    with pytest.raises(NotImplementedError, match="r_row"):
        run_block_cuda(plan, 1, 0, 1, 0, 2)


def test_supported_study_has_no_unsupported_features(nist_dir):
    assert unsupported_features(_nist(nist_dir)) == []


def test_clear_error_without_gpu_or_simulator(nist_dir):
    try:
        from numba import cuda
    except ImportError:
        cuda = None
    if cuda is not None and cuda.is_available():
        pytest.skip("a GPU (or the simulator) is available here")
    plan = make_plan(_nist(nist_dir, **{"network.max_solutions": 1}))
    with pytest.raises(RuntimeError, match="numba-cuda|GPU"):
        run_block_cuda(plan, 0, 0, 1, 0, 2)


def test_kernel_compiles_for_a_real_gpu(nist_dir, tmp_path):
    """Type-check and compile the kernel for sm_90 (skipped where NVVM/NVRTC are missing)."""
    plan = make_plan(_nist(nist_dir, **{"network.max_solutions": 1}))
    src = tmp_path / "plan.pkl"
    with open(src, "wb") as f:
        pickle.dump(plan, f)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", PTX_SCRIPT, str(src)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_cli_backend_cuda_without_gpu_is_one_line_error(tmp_path):
    import subprocess
    import sys

    from mcmtj.run.cuda import cuda_available

    if cuda_available():
        pytest.skip("a GPU or the simulator is available here")
    study = tmp_path / "s.toml"
    study.write_text('[network]\nn_solutions = 1\nepochs = 2\n[run]\ninstances = 2\n')
    proc = subprocess.run([sys.executable, "-m", "mcmtj.cli", "run", str(study), "-o",
                           str(tmp_path / "o.nc"), "--backend", "cuda"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("mcmtj: error:") and "cuda" in proc.stderr
    assert not (tmp_path / "o.nc").exists()
