"""TensorFlow against JAX (``reprodl.book.backend_compare``): the measures, the committed records
(one of a CPU without AVX-512, one with: YNNPACK's kernels differ), and, in the slow lane, a
short live comparison that parts the backends where the record of this CPU's kind says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import ROOT

from reprodl.book import backend_compare as bc
from reprodl.book import jax_battery
from reprodl.env import contract, cpu
from reprodl.errors import ReprodlError

RECORD = ROOT / "src" / "reprodl" / "results" / "backend_comparison.json"
#: The same comparison on the Xeon, whose YNNPACK kernels are the AVX-512 ones.
RECORD_AVX512 = RECORD.with_name("backend_comparison_avx512.json")


def record(path=RECORD) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_ulps_count_the_floats_between_two_values():
    one = np.float32(1.0)
    after = np.nextafter(one, np.float32(2))
    assert bc.ulps(np.array([one]), np.array([after]))[0] == 1
    assert bc.ulps(np.array([-0.0], np.float32), np.array([0.0], np.float32))[0] == 0
    below = np.nextafter(np.float32(0), np.float32(-1))
    above = np.nextafter(np.float32(0), np.float32(1))
    assert bc.ulps(np.array([below]), np.array([above]))[0] == 2


def test_difference_measures_share_size_and_ulps():
    a = np.array([1.0, 2.0, 0.0, 4.0], np.float32)
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(3))
    got = bc.difference(a, b)
    assert got["differing"] == 0.25 and got["max_ulps"] == 1
    assert got["max_abs"] == pytest.approx(2.384185791015625e-07)
    assert bc.difference(a, a) == {
        "shape": [4], "differing": 0.0, "max_abs": 0.0, "max_rel": 0.0, "max_ulps": 0
    }  # fmt: skip
    with pytest.raises(ReprodlError, match="shapes differ"):
        bc.difference(a, a[:2])


def test_first_parting_is_the_first_layer_with_a_differing_bit():
    rows = [{"layer": "0:a", "differing": 0.0}, {"layer": "1:b", "differing": 0.5}]
    assert bc.first_parting(rows) == "1:b"
    assert bc.first_parting(rows[:1]) is None


def test_each_backend_child_gets_its_pins():
    assert bc.child_env("jax")["XLA_FLAGS"] == contract.JAX_PINNED_ENV["XLA_FLAGS"]
    assert bc.child_env("jax")["KERAS_BACKEND"] == "jax"
    assert bc.child_env("tensorflow")["KERAS_BACKEND"] == "tensorflow"
    assert bc.child_env("tensorflow")["TF_NUM_INTRAOP_THREADS"] == "1"
    with pytest.raises(ReprodlError, match="unknown backend"):
        bc.child_env("torch")


def test_the_record_compares_every_model_layer_by_layer():
    rec = record()
    assert rec["jax_pins"] == contract.JAX_PINNED_ENV
    assert [m["name"] for m in rec["models"]] == [m.name for m in bc.MODELS]
    for m in rec["models"]:
        assert m["first_parting"] == bc.first_parting(m["layers"]), m["name"]
        for backend in bc.BACKENDS:
            run = m["training"][backend]
            assert run["test_total"] == 10000 and 0 < run["test_correct"] <= 10000


def test_the_record_shows_the_convolutions_agree_and_a_dense_product_parts_them():
    """On the same weights the CNN's convolutions give the same bits on both backends; its first
    wide matrix product (3,136 x 1,024) does not."""
    cnn = {m["name"]: m for m in record()["models"]}["cnn"]
    layers = {row["layer"].split(":")[1]: row for row in cnn["layers"]}
    assert layers["conv_1"]["differing"] == layers["conv_2"]["differing"] == 0.0
    assert cnn["first_parting"].endswith(":dense_1024")


def test_on_the_avx512_cpu_the_second_convolution_already_parts_them():
    """With YNNPACK's AVX-512 kernels the CNN parts at its second convolution; the first (25
    products per output) still agrees. Same pins and versions as the AVX2 record."""
    rec, avx2 = record(RECORD_AVX512), record()
    assert rec["jax_pins"] == avx2["jax_pins"] and rec["versions"] == avx2["versions"]
    cnn = {m["name"]: m for m in rec["models"]}["cnn"]
    layers = {row["layer"].split(":")[1]: row for row in cnn["layers"]}
    assert layers["conv_1"]["differing"] == 0.0 and layers["conv_2"]["differing"] > 0
    assert cnn["first_parting"].endswith(":conv_2")


@pytest.mark.slow
def test_a_short_live_comparison_parts_the_backends_where_the_record_says(tmp_path):
    """The forward pass does not depend on the training's length: one step is enough to see
    the same first parting layer as the committed record."""
    models = [bc.Model("cnn-no-dropout", "cnn", 1, dropout=0.0), bc.Model("lstm", "lstm", 1)]
    live = bc.compare(models, tmp_path)
    avx512 = jax_battery.ynn_kind(cpu.describe().flags) == "AVX-512"
    stored = {m["name"]: m for m in record(RECORD_AVX512 if avx512 else RECORD)["models"]}
    for m in live["models"]:
        assert m["first_parting"] == stored[m["name"]]["first_parting"], m["name"]
        assert m["layers"] == stored[m["name"]]["layers"], m["name"]
