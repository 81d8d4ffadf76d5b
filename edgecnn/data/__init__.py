"""Datasets: IDX files or CIFAR-10 binary batches in, uint8 images and int64 labels out.

`load_split` finds and loads a split (grey (N,H,W) or CIFAR colour (N,32,32,3));
`lenet_input` / `lenet_input_int8` turn grey images into LeNet's padded 32x32
float or int8 input; `fetch` downloads MNIST, Fashion-MNIST or CIFAR-10 and
verifies them.
"""

from edgecnn.data.datasets import find_dataset, lenet_input, lenet_input_int8, load_split, search_roots
from edgecnn.data.fetch import fetch
from edgecnn.data.idx import read_idx, write_idx

__all__ = ["fetch", "find_dataset", "lenet_input", "lenet_input_int8", "load_split", "read_idx",
           "search_roots", "write_idx"]
