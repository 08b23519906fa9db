"""The speed yardstick must not drift: benchmarks/ref_loop.py is pinned by its bytes."""

import hashlib
from pathlib import Path

REF_LOOP = Path(__file__).resolve().parent.parent / "benchmarks" / "ref_loop.py"
# the plain loop bench_train times gankit against; changing it moves every speed ratio
PINNED_SHA256 = "162b5d579ed4243dee467a684fd36af66b5bc95c1654b6b4ba0277bc8747f2f7"


def test_the_reference_loop_is_the_pinned_one():
    assert hashlib.sha256(REF_LOOP.read_bytes()).hexdigest() == PINNED_SHA256
