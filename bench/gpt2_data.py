"""Token data for the Python baselines: examples/gpt2/data.h/.cpp, sampler.cpp and dataloader.cpp of
deepspeed.cpp, so every row reads the same windows in the same order.

llm.c / raw uint16 / byte token files, windows of seq_len+1 tokens, sequential or SplitMix64-random window
starts, read in PyTorch's DistributedSampler order (shuffle, seed, epoch); plus "random" (tokens drawn on the
device, no file at all). No numpy: the device image has it, this repository's CI machine may not.
"""

from __future__ import annotations

import mmap
import os
from typing import Iterator, List

import torch


# ----------------------------------------------------------------------------------------------------------
# Data (data.h / data.cpp, sampler.cpp, dataloader.cpp)
# ----------------------------------------------------------------------------------------------------------

LLMC_MAGIC = 20240520
LLMC_HEADER_BYTES = 256 * 4
_MASK64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64, data.cpp's stateless (seed, index) -> offset map."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class TokenFile:
    """A memory-mapped token file: llm.c (.bin with header), raw uint16, or bytes (vocabulary 256)."""

    def __init__(self, path: str, fmt: str = "auto"):
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise SystemExit(f"'{path}' is empty")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private, writable: no torch warning
        header = torch.frombuffer(self._map, dtype=torch.int32, count=3) if size >= 12 else None
        magic = int(header[0]) if header is not None else 0
        if fmt == "auto":
            fmt = "llmc" if magic == LLMC_MAGIC else ("uint16" if path.endswith(".bin") else "bytes")
        offset, width = 0, 1
        if fmt == "llmc":
            if magic != LLMC_MAGIC:
                raise SystemExit(f"'{path}' is not an llm.c token file (magic {magic}, expected {LLMC_MAGIC})")
            version, count = int(header[1]), int(header[2])
            width = {1: 2, 2: 4}.get(version, 0)
            if not width:
                raise SystemExit(f"'{path}': unknown llm.c version {version}")
            offset = LLMC_HEADER_BYTES
            if size - offset != count * width:
                raise SystemExit(f"'{path}': header says {count} tokens, the file holds {(size - offset) // width}")
        elif fmt == "uint16":
            width = 2
            if size % 2:
                raise SystemExit(f"'{path}': {size} bytes is not a whole number of uint16 tokens")
        elif fmt != "bytes":
            raise SystemExit(f"unknown token format \"{fmt}\" (expected auto, llmc, uint16 or bytes)")
        self.format = fmt
        n = (size - offset) // width
        # int16/int32 views; tokens are unsigned, fixed up in read().
        dtype = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[width]
        self.tokens = torch.frombuffer(self._map, dtype=dtype, offset=offset, count=n)
        self.width = width
        self.size = n

    def read(self, start: int, length: int) -> torch.Tensor:
        t = self.tokens[start:start + length].to(torch.int64)
        if self.width == 2:
            t &= 0xFFFF
        elif self.width == 4:
            t &= 0xFFFFFFFF
        return t


class TokenWindows:
    """Window i: seq_len+1 tokens starting at i*seq_len (sequential) or at SplitMix64(seed, i) (random)."""

    def __init__(self, file: TokenFile, seq_len: int, sampling: str, seed: int, vocab_size: int):
        if file.size < seq_len + 1:
            raise SystemExit(f"'{file.path}' holds {file.size} tokens, fewer than one window of {seq_len + 1}")
        self.file, self.seq_len, self.sampling, self.seed, self.vocab = file, seq_len, sampling, seed, vocab_size
        self.num_windows = (file.size - 1) // seq_len

    def start(self, i: int) -> int:
        if self.sampling == "sequential":
            return i * self.seq_len
        starts = self.file.size - self.seq_len
        return _mix(((self.seed * 0x100000001B3) & _MASK64) ^ _mix(i)) % starts

    def batch(self, indices: List[int]):
        w = torch.stack([self.file.read(self.start(i), self.seq_len + 1) for i in indices])
        if self.vocab and int(w.max()) >= self.vocab:
            raise SystemExit(f"'{self.file.path}' holds token {int(w.max())}, outside the vocabulary of {self.vocab}")
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def sampler_indices(n: int, world: int, rank: int, seed: int, epoch: int) -> List[int]:
    """torch.utils.data.DistributedSampler(shuffle=True, seed, drop_last=False): ours is the same."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    order = torch.randperm(n, generator=g).tolist()
    total = (n + world - 1) // world * world
    padded = [order[i % n] for i in range(total)]
    return padded[rank:total:world]


class Batches:
    """Endless micro-batches [B, T] (x, y) for one rank, on `device`.

    data == "random": tokens drawn on the device (uniform in [0, min(vocab, 50257))), no host work at all.
    Otherwise a token file read as our engine's DataLoader reads it (DistributedSampler order, consecutive
    micro-batches, the last one of an epoch partial, then the next epoch).
    """

    def __init__(self, data: str, data_format: str, sampling: str, seq_len: int, micro_batch: int, vocab: int,
                 seed: int, world: int, rank: int, device: torch.device):
        self.device, self.B, self.T = device, micro_batch, seq_len
        self.random = data == "random"
        if self.random:
            self.high = min(vocab, 50257)
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(seed * 1000003 + rank)
            return
        self.windows = TokenWindows(TokenFile(data, data_format), seq_len, sampling, seed, vocab)
        self.world, self.rank, self.seed, self.epoch = world, rank, seed, 0
        self.pin = device.type == "cuda"

    def describe(self) -> str:
        if self.random:
            return f"random tokens in [0, {self.high}) drawn on {self.device}"
        w = self.windows
        return f"{w.file.path} ({w.file.format}, {w.file.size} tokens, {w.num_windows} windows, {w.sampling})"

    def __iter__(self) -> Iterator:
        if self.random:
            while True:
                w = torch.randint(0, self.high, (self.B, self.T + 1), device=self.device, generator=self.gen)
                yield w[:, :-1], w[:, 1:]
        while True:
            idx = sampler_indices(self.windows.num_windows, self.world, self.rank, self.seed, self.epoch)
            for i in range(0, len(idx), self.B):
                x, y = self.windows.batch(idx[i:i + self.B])
                if self.pin:
                    x, y = x.pin_memory(), y.pin_memory()
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.epoch += 1
