"""Live tensor memory on any device, including CPU, where torch keeps no allocator statistics.

    with LiveTensorBytes() as live:
        step()
    live.peak, live.current, live.allocated    # bytes of tensor storage made inside the block
    live.largest_at_peak(10)                   # [(bytes, op, shape, dtype), ...] alive at the peak

A TorchDispatchMode sees every aten op called inside the block (forward, autograd's backward and the
optimizer, including what activation checkpointing recomputes). Each storage an op returns that none
of its inputs shares (a new allocation, not a view or an in-place result) is counted until it is
freed; a weak reference to the storage tells when that happens. Tensors that existed before the block
(weights, optimizer state from earlier steps) are not counted. Not seen: scratch buffers a kernel
allocates and frees inside itself, and memory the C allocator (glibc malloc on CPU) keeps after a
tensor is freed: compare `peak` with peak RSS to see that. The bookkeeping is Python per op: a step
runs slower under it.
"""

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    def __init__(self, keep_peak_snapshot: bool = False):
        super().__init__()
        self.live = {}  # storage data_ptr -> (weak ref, bytes, op, shape, dtype)
        self.current = self.peak = self.allocated = 0
        self.keep_peak_snapshot = keep_peak_snapshot
        self.snapshot = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._forget_freed()
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if storage.nbytes() == 0 or key in inputs or key in self.live:
                continue  # empty, a view or in-place result of an input, or already counted
            self.live[key] = (StorageWeakRef(storage), storage.nbytes(), str(func), tuple(t.shape), t.dtype)
            self.current += storage.nbytes()
            self.allocated += storage.nbytes()
            if self.current > self.peak:
                self.peak = self.current
                if self.keep_peak_snapshot:
                    self.snapshot = [entry[1:] for entry in self.live.values()]
        return out

    def _forget_freed(self):
        for key in [key for key, entry in self.live.items() if entry[0].expired()]:
            self.current -= self.live.pop(key)[1]

    def largest_at_peak(self, n: int = 10) -> list:
        """The n largest storages alive at the peak: (bytes, op, shape, dtype). Needs keep_peak_snapshot."""
        return sorted(self.snapshot, key=lambda entry: -entry[0])[:n]
