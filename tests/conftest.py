"""Tests run single-threaded: small tensors are faster that way on a 2-core machine, and it
keeps CPU results identical from run to run."""

import torch

torch.set_num_threads(1)
