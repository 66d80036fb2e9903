"""The datasets knnserve knows by name: files, download URLs, checksums, class names, reader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from knnserve.data.arrays import Splits
from knnserve.data.cifar import read_cifar_archive
from knnserve.data.digits import read_digits
from knnserve.data.idx import read_idx_folder
from knnserve.errors import InvalidInputError

DEFAULT_DATASET = "fashion-mnist"

# Reads a dataset from the folder holding its files (None for built-in datasets).
Reader = Callable[[Path | None], Splits]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a registered dataset, the mirrors serving it, and what verifies it.

    ``md5`` is the published digest of the file as served (e.g. a ``.gz`` or ``.tar.gz``);
    ``sha256`` is the digest of its decompressed content, which survives recompression.
    """

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset knnserve can resolve by name."""

    name: str
    description: str
    class_names: tuple[str, ...]
    reader: Reader
    files: tuple[RemoteFile, ...] = ()
    system_dirs: tuple[Path, ...] = ()
    debian_package: str | None = None
    homepage: str = ""
    builtin_source: str = ""  # the ``source`` of a dataset with no files


def _idx_files(
    mirrors: tuple[str, ...], md5: dict[str, str], sha256: dict[str, str] | None = None
) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(
            name=f"{stem}.gz",
            urls=tuple(f"{mirror}{stem}.gz" for mirror in mirrors),
            md5=md5[stem],
            sha256=(sha256 or {}).get(stem),
        )
        for stem in md5
    )


def _read_idx10(folder: Path | None) -> Splits:
    return read_idx_folder(_required(folder), n_classes=10)


def _read_archive(archive_name: str, folder: Path | None) -> Splits:
    return read_cifar_archive(_required(folder) / archive_name)


def _read_digits(folder: Path | None) -> Splits:
    return read_digits()


def _required(folder: Path | None) -> Path:
    if folder is None:
        raise ValueError("a dataset with files is read from the folder holding them, got None")
    return folder


FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    description="Zalando Fashion-MNIST: 60,000/10,000 grayscale 28x28 clothing images, 10 classes (MIT)",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    reader=_read_idx10,
    # md5: the upstream README's digests of the .gz files; sha256: of the decompressed
    # files, computed from Debian's dataset-fashion-mnist (upstream git 55506a9).
    files=_idx_files(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    debian_package="dataset-fashion-mnist",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
)

MNIST = DatasetSpec(
    name="mnist",
    description="MNIST handwritten digits: 60,000/10,000 grayscale 28x28 images, 10 classes",
    class_names=tuple(str(i) for i in range(10)),
    reader=_read_idx10,
    # md5 of the .gz files as published by torchvision (datasets/mnist.py); no digest of
    # the decompressed files is published, so a copy is only verifiable as these .gz.
    files=_idx_files(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        md5={
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    homepage="http://yann.lecun.com/exdb/mnist/",
)

CIFAR10_SPEC = DatasetSpec(
    name="cifar10",
    description="CIFAR-10 binary version: 50,000/10,000 colour 32x32 images, 10 classes",
    class_names=(
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    reader=partial(_read_archive, "cifar-10-binary.tar.gz"),
    # md5 of the archive as published on the CIFAR page.
    files=(
        RemoteFile(
            name="cifar-10-binary.tar.gz",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            md5="c32a1d4ab5d03f1284b67883e8d87530",
        ),
    ),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
)

CIFAR100_SPEC = DatasetSpec(
    name="cifar100",
    description="CIFAR-100 binary version: 50,000/10,000 colour 32x32 images, 100 fine classes",
    class_names=(
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
        "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
        "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
        "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
        "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
        "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
        "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
        "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ),
    reader=partial(_read_archive, "cifar-100-binary.tar.gz"),
    files=(
        RemoteFile(
            name="cifar-100-binary.tar.gz",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
            md5="03b5dce01913d631647c71ecec9e9cb8",
        ),
    ),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
)

DIGITS = DatasetSpec(
    name="digits",
    description="scikit-learn load_digits: 1,797 8x8 digits, split 1,437/360 (seeded, stratified)",
    class_names=tuple(str(i) for i in range(10)),
    reader=_read_digits,
    builtin_source="sklearn.datasets.load_digits",
    homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
)

# Plain dict on purpose: tests register small datasets with monkeypatch.setitem.
REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (FASHION_MNIST, MNIST, CIFAR10_SPEC, CIFAR100_SPEC, DIGITS)
}


def list_datasets() -> list[str]:
    """Names of the registered datasets, the default first."""
    return sorted(REGISTRY, key=lambda name: (name != DEFAULT_DATASET, name))


def get_spec(name: str) -> DatasetSpec:
    """Return the registered dataset called ``name``; an unknown name raises InvalidInputError."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InvalidInputError("dataset", f"one of {', '.join(list_datasets())}", repr(name)) from None
