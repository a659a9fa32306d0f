"""Property: for every loader, batches of any size concatenate to the whole set, and limit is honoured."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.data import CifarDataset, CsvTable, ImageFolder, load_idx

N = 13


@pytest.fixture(scope="module")
def loaders(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("loaders")
    files.idx_pair(root / "plain", N)
    files.idx_pair(root / "gz", N, gz=True)
    files.cifar_folder(root / "cifar", sizes=(4, 5, 4))
    files.image_folder(root / "imgs", [str(i % 3) for i in range(N)])
    rows = [["a", "b", "label"]] + [[i, (i * 7) % 5, "xyz"[i % 3]] for i in range(N)]
    files.write_csv(root / "t.csv", rows)
    return {
        "idx": load_idx(root / "plain"),
        "idx-gz": load_idx(root / "gz"),
        "cifar": CifarDataset(root / "cifar", "train"),
        "imagefolder": ImageFolder(root / "imgs"),
        "table": CsvTable(root / "t.csv"),
    }


def _cat(batches):
    xs, ys = zip(*batches, strict=True) if batches else ((), ())
    return (torch.cat(xs), torch.cat(ys)) if xs else (None, None)


@pytest.mark.parametrize("kind", ["idx", "idx-gz", "cifar", "imagefolder", "table"])
def test_batches_concatenate_to_whole(loaders, kind):
    d = loaders[kind]
    whole_x, whole_y = _cat(list(d.batches(10_000)))
    assert len(d) == N == whole_x.shape[0] == whole_y.shape[0]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(batch_size=st.integers(1, N + 3), limit=st.none() | st.integers(0, N + 3))
    def check(batch_size, limit):
        batches = list(d.batches(batch_size, limit=limit))
        expect = N if limit is None else min(limit, N)
        assert all(0 < len(y) <= batch_size for _, y in batches)
        assert all(len(y) == batch_size for _, y in batches[:-1])
        assert sum(len(y) for _, y in batches) == expect
        if expect:
            x, y = _cat(batches)
            assert torch.equal(x, whole_x[:expect]) and torch.equal(y, whole_y[:expect])

    check()
