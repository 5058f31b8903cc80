"""The threads around the merge loop of :mod:`judgeforge.merge.fast_linear`.

* one reader thread per input ``pread``s each chunk's tensors into one of ``depth`` reusable
  buffers (pinned when there is a GPU), so at most ``depth`` chunks of each input sit in host
  memory at a time, never a whole shard;
* one writer thread writes the output shards as chunks finish and asks the kernel to start
  writing each chunk to disk at once (``sync_file_range``), so the disk is busy from the first
  chunk;
* one sync thread ``fdatasync``-s each finished shard while the next one is written.

The first error in any thread stops them all (``abort``) and is raised in the main thread by
:meth:`Stream.raise_error`.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from judgeforge.merge.checkpoint import Checkpoint
from judgeforge.merge.fast_plan import ALIGN, Chunk, Plan


class Abort(Exception):
    """Raised inside a thread waiting on a queue once another thread failed."""


def pread_into(fd: int, mv: memoryview, offset: int) -> None:
    while len(mv):
        n = os.preadv(fd, [mv], offset)
        if n <= 0:
            raise EOFError(f"unexpected end of file at offset {offset}")
        mv = mv[n:]
        offset += n


def write_all(fd: int, mv: memoryview) -> None:
    while len(mv):
        n = os.write(fd, mv)
        mv = mv[n:]


_SYNC_FILE_RANGE_WRITE = 2
_libc = None


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask Linux to start writing this range to disk now (sync_file_range), without waiting for it."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            import ctypes.util

            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = lib.sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            _libc = fn
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)


class Stream:
    """Buffers, queues and threads of one merge.  The main thread takes each chunk's filled input
    buffers (:meth:`inputs`) and a free output buffer (:meth:`output`), merges, and hands both back
    (:meth:`done`); then :meth:`finish` waits for the writes and :meth:`close` cleans up."""

    def __init__(self, inputs: list[Checkpoint], plan: Plan, out_dir: Path, *, pinned: bool, depth: int,
                 fsync: bool, on_shard=None):
        import torch

        self.ckpts, self.plan, self.out_dir = inputs, plan, out_dir
        self.fsync, self.on_shard = fsync, on_shard
        n_in = len(inputs)
        in_cap = [max([c.in_nbytes[i] for c in plan.chunks] + [ALIGN]) for i in range(n_in)]
        out_cap = max([c.out_nbytes for c in plan.chunks] + [ALIGN])

        def alloc(n):
            return torch.empty(n, dtype=torch.uint8, pin_memory=pinned)

        self.free_in = [queue.Queue() for _ in range(n_in)]
        self.ready_in = [queue.Queue() for _ in range(n_in)]
        self.free_out: queue.Queue = queue.Queue()
        self.write_q: queue.Queue = queue.Queue()
        self.sync_q: queue.Queue = queue.Queue()
        for i in range(n_in):
            for _ in range(depth):
                self.free_in[i].put(alloc(in_cap[i]))
        for _ in range(depth):
            self.free_out.put(alloc(out_cap))
        self.host_buffer_bytes = depth * (sum(in_cap) + out_cap)
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self.written: list[str] = []  # output shards complete on disk
        self.fds: dict[Path, int] = {}
        for ck in inputs:
            for f in ck.files:
                self.fds[f] = os.open(f, os.O_RDONLY)
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(self.fds[f], 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self.threads = [threading.Thread(target=self._read, args=(i,), daemon=True, name=f"jf-merge-read{i}")
                        for i in range(n_in)]
        self.threads.append(threading.Thread(target=self._write, daemon=True, name="jf-merge-write"))
        self.threads.append(threading.Thread(target=self._sync, daemon=True, name="jf-merge-sync"))
        for th in self.threads:
            th.start()

    # ---- the main thread's side

    def get(self, q: queue.Queue):
        """The next item of ``q``; :class:`Abort` once any thread failed."""
        while True:
            if self.abort.is_set():
                raise Abort()
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def inputs(self) -> list:
        return [self.get(q) for q in self.ready_in]

    def output(self):
        return self.get(self.free_out)

    def done(self, ch: Chunk, bufs: list, obuf) -> None:
        for q, b in zip(self.free_in, bufs):
            q.put(b)
        self.write_q.put((ch, obuf))

    def finish(self) -> None:
        """No more chunks: wait until the threads have written and synced everything."""
        self.write_q.put(None)
        for th in self.threads:
            while th.is_alive():
                th.join(timeout=0.1)
                if self.errors:
                    break

    def close(self) -> None:
        """Stop the threads (all of them, after an error) and close the inputs."""
        if self.errors or self.abort.is_set():
            self.abort.set()
        for th in self.threads:
            th.join(timeout=5)
        for fd in self.fds.values():
            os.close(fd)

    def raise_error(self) -> None:
        """The first error a thread met, raised in the caller's thread."""
        if self.errors:
            raise self.errors[0]

    def _fail(self, e: BaseException) -> None:
        self.errors.append(e)
        self.abort.set()

    # ---- the threads

    def _read(self, i: int) -> None:
        try:
            ck = self.ckpts[i]
            for ch in self.plan.chunks:
                buf = self.get(self.free_in[i])
                mv = memoryview(buf.numpy())
                for n in ch.names:
                    t = ck.tensors[n]
                    off = ch.in_offsets[i][n]
                    pread_into(self.fds[t.file], mv[off : off + t.nbytes], t.start)
                self.ready_in[i].put(buf)
        except Abort:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self._fail(e)

    def _write(self) -> None:
        fd, cur, pos = None, None, 0
        shards = self.plan.shards
        try:
            while True:
                item = self.get(self.write_q)
                if item is None:
                    break
                ch, buf = item
                if ch.shard != cur:
                    if fd is not None:
                        self.sync_q.put((fd, self.out_dir / shards[cur].file))
                    fd, cur = None, ch.shard
                    fd = os.open(self.out_dir / shards[cur].file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    write_all(fd, memoryview(shards[cur].header))
                    pos = len(shards[cur].header)
                if ch.out_nbytes:
                    write_all(fd, memoryview(buf.numpy())[: ch.out_nbytes])
                    if self.fsync:  # start writeback now: the disk works while we compute, not only at fdatasync
                        start_writeback(fd, pos, ch.out_nbytes)
                    pos += ch.out_nbytes
                self.free_out.put(buf)
            if fd is not None:
                self.sync_q.put((fd, self.out_dir / shards[cur].file))
                fd = None
        except Abort:
            pass
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
        finally:
            if fd is not None:
                os.close(fd)
            self.sync_q.put(None)

    def _sync(self) -> None:
        """Makes each finished shard durable while the writer already fills the next one."""
        try:
            while True:
                item = self.sync_q.get()
                if item is None:
                    return
                fd, path = item
                try:
                    if self.fsync and not self.abort.is_set():
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
                if self.abort.is_set():
                    continue
                self.written.append(path.name)
                if self.on_shard is not None:
                    self.on_shard(path)
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
